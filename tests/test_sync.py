"""gmg/ is generated from nbs/: exporting the notebooks again must reproduce it exactly."""
import filecmp
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_modules_match_notebooks(tmp_path):
    for name in ("nbs", "gmg"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for py in (tmp_path / "gmg").glob("*.py"):
        if py.name != "__init__.py":      # the body of __init__.py is hand-written; the rest is regenerated
            py.unlink()
    subprocess.run(["nbdev-export"], cwd=tmp_path, check=True, capture_output=True)
    ours = sorted(p.name for p in (ROOT / "gmg").glob("*.py"))
    fresh = sorted(p.name for p in (tmp_path / "gmg").glob("*.py"))
    assert ours == fresh, f"modules differ: {set(ours) ^ set(fresh)}"
    stale = [n for n in ours if not filecmp.cmp(ROOT / "gmg" / n, tmp_path / "gmg" / n, shallow=False)]
    assert not stale, f"gmg/ is out of date with nbs/ (run nbdev-export): {stale}"

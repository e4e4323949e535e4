"""Every notebook runs top to bottom through nbdev's own test runner (the tests written next to the code)."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_all_notebooks_pass_nbdev_test():
    run = subprocess.run(["nbdev-test", "--timing"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"nbdev-test failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    print(run.stdout)

"""End to end: `dvc repro` on the micro profile in a throw-away copy of the repository.

The copy holds what git would clone (tracked and untracked-but-not-ignored files) plus `data/` (the raw inputs
of `data.dvc`); it becomes its own git repository, `params.yaml` is switched to `profile: micro` with a grid of
one dataset (whose render cache takes ~0.1 s), three regularizers and two seeds, and `dvc repro` runs every stage (seconds each). Then every
output declared in `dvc.lock` and every top-level metrics/plots path must exist, the report must cover every
run, and a second `dvc repro` must find nothing to do.
"""
from __future__ import annotations
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MICRO = {
    "profile": "micro",
    "datasets": {"names": "dsprites", "build_cache": True},  # the dsprites cache builds in ~0.1 s
    "train": {"datasets": ["dsprites"], "models": ["beta_vae"], "regularizers": ["none", "dst", "gmg"],
              "seeds": [0, 1]},
    "report": {"n_boot": 200},
}
MICRO_TOY = {"points": 16, "steps": 3, "eval_points": 32, "seeds": "1", "gw_iter": 2}   # the toy stage, seconds
RUNS = [f"dsprites-beta_vae-{r}-{s}" for r in ("none", "dst", "gmg") for s in (0, 1)]

def _sh(args: list[str], cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    run = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"{' '.join(args)} failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}"
    return run

def _merge(base: dict, override: dict) -> dict:
    for k, v in override.items():
        base[k] = _merge(dict(base.get(k) or {}), v) if isinstance(v, dict) else v
    return base

def _copy_repository(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if (ROOT / "data").is_dir():
        shutil.copytree(ROOT / "data", dest / "data")

def _declared_outputs(repo: Path) -> list[Path]:
    "Every `outs` path of every stage in dvc.lock, and the top-level metrics and plots of dvc.yaml."
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    paths = [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    for entry in spec.get("metrics", []) + spec.get("plots", []):
        paths += list(entry) if isinstance(entry, dict) else [entry]
    return [repo / p for p in paths]

@pytest.fixture(scope="module")
def micro_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline") / "gmg"
    repo.mkdir()
    _copy_repository(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    micro = {**MICRO, **({"toy": MICRO_TOY} if "toy" in params else {})}
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, micro), sort_keys=False))
    # the committed dvc.lock records the cpu-profile grid; DVC keeps lock entries of matrix items the micro grid
    # drops, so start the micro pipeline from no lock (its outputs are checked against its own lock below)
    (repo / "dvc.lock").unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="gmg test", GIT_AUTHOR_EMAIL="test@gmg.local", GIT_COMMITTER_NAME="gmg test",
               GIT_COMMITTER_EMAIL="test@gmg.local")
    env.pop("DVC_ROOT", None)
    _sh(["git", "init", "-q"], repo, env)
    _sh(["dvc", "config", "core.analytics", "false"], repo, env)
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-q", "-m", "micro profile"], repo, env)
    first = _sh(["dvc", "repro"], repo, env, timeout=900)
    second = _sh(["dvc", "repro"], repo, env)
    status = _sh(["dvc", "status", "dvc.yaml", "--json"], repo, env)   # the pipeline (not data.dvc's raw inputs)
    return repo, first.stdout, second.stdout, status.stdout

def test_every_declared_output_exists(micro_repo):
    repo, first, *_ = micro_repo
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    expected = {"datasets", "toy", "report"} | {f"{s}@{r}" for s in ("train", "evaluate") for r in RUNS}
    assert expected <= set(lock["stages"]), sorted(expected - set(lock["stages"]))
    missing = [str(p.relative_to(repo)) for p in _declared_outputs(repo) if not p.exists()]
    assert not missing, f"declared outputs missing: {missing}\n{first[-3000:]}"

def test_report_covers_every_run(micro_repo):
    repo, *_ = micro_repo
    import pandas as pd
    summary = pd.read_csv(repo / "results" / "summary.csv")
    assert sorted(summary.run) == sorted(RUNS)
    assert summary.dci_disentanglement.between(0, 1).all()
    assert set(summary.method) == {"base", "DST (decoder, cosine)", "GMG (decoder, cosine)"}
    differences = pd.read_csv(repo / "results" / "report" / "differences.csv")
    headline = differences[differences.score == "dci_disentanglement"]
    assert set(headline.versus) == {"base", "DST"} and (headline.seeds == 2).all()
    assert (headline.low <= headline["mean"]).all() and (headline["mean"] <= headline.high).all()
    verdicts = (repo / "results" / "report" / "verdicts.md").read_text()
    assert "Decoder beats encoder | **not tested at this profile**" in verdicts
    assert "GMG beats DST | **not tested at this profile** | only 2 paired seed(s)" in verdicts   # 2 < min_seeds
    figures = repo / "results" / "report" / "figures"
    assert (figures / "traversals_and_samples.png").stat().st_size > 0 and (figures / "dci_d_by_method.png").exists()
    assert (figures / "toy_figure2.png").exists() == (repo / "results" / "toy" / "figure2.png").exists()

def test_second_repro_has_nothing_to_do(micro_repo):
    repo, _, second, status = micro_repo
    assert "Running stage" not in second, second
    assert json.loads(status) == {}, status

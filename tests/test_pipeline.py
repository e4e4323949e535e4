"""End to end: `dvc repro` on the micro profile in a throw-away copy of the repository, then a fresh clone of it.

The copy holds what git would clone (tracked and untracked-but-not-ignored files) plus `data/` (the raw inputs
of `data.dvc`); it becomes its own git repository, `params.yaml` is switched to `profile: micro` with a grid of
one dataset (whose render cache takes ~0.1 s), three regularizers and two seeds, and `dvc repro` runs every
stage (seconds each). Then every output declared in `dvc.lock` and every metrics/plots path must exist, the
report must cover every run, and a second `dvc repro` must find nothing to do.

DVC's conventions are checked on the result: the small metric and plot files (`cache: false`) are exactly what
git sees as new, every cached output is git-ignored by the `.gitignore` files DVC wrote, and a `git clone` of the
committed result (no DVC cache, as a newcomer gets it) shows the numbers with `dvc metrics show` / `dvc exp show`,
dry-runs `dvc repro` and `dvc exp run -S ...`, and stops a bad parameter at the first stage command.

The work is bounded by size (the micro profile), not by a clock: a slow machine makes these tests slow, never
failing (the subprocess timeout is only a safety net against a hung process, hours above any real run).
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
STAGES = {"datasets", "toy", "report"} | {f"{s}@{r}" for s in ("train", "evaluate") for r in RUNS}
SAFETY_NET_S = 6 * 3600   # a hung process, not a slow one (the micro pipeline takes minutes on a loaded 2-core CPU)

def _sh(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SAFETY_NET_S)
    if check:
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

def _env(repo: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="gmg test", GIT_AUTHOR_EMAIL="test@gmg.local", GIT_COMMITTER_NAME="gmg test",
               GIT_COMMITTER_EMAIL="test@gmg.local")
    env.pop("DVC_ROOT", None)
    return env

def micro_copy(repo: Path) -> dict:
    "A committed git repository at `repo` holding the project with the micro profile; returns its environment."
    repo.mkdir(parents=True)
    _copy_repository(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    micro = {**MICRO, **({"toy": MICRO_TOY} if "toy" in params else {})}
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, micro), sort_keys=False))
    # the committed dvc.lock records the cpu-profile grid; DVC keeps lock entries of matrix items the micro grid
    # drops, so start the micro pipeline from no lock (its outputs are checked against its own lock below)
    (repo / "dvc.lock").unlink(missing_ok=True)
    # likewise the study's lock (study/dvc.lock records its 73 stages; a micro study writes its own)
    (repo / "study" / "dvc.lock").unlink(missing_ok=True)
    # and without the cpu profile's committed small results: the micro run writes its own
    shutil.rmtree(repo / "results", ignore_errors=True)
    env = _env(repo)
    _sh(["git", "init", "-q"], repo, env)
    _sh(["dvc", "config", "core.analytics", "false"], repo, env)
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-q", "-m", "micro profile"], repo, env)
    return env

def _declared_outputs(repo: Path) -> list[Path]:
    "Every `outs` path of every stage in dvc.lock, and the top-level metrics and plots of dvc.yaml."
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    paths = [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    for entry in spec.get("metrics", []) + spec.get("plots", []):
        paths += list(entry) if isinstance(entry, dict) else [entry]
    return [repo / p for p in paths]

def _outputs_by_caching(repo: Path) -> tuple[set[str], set[str]]:
    "(cached, committed): the pipeline's outputs (matrix resolved by DVC itself) by their `cache` flag."
    from dvc.repo import Repo
    with Repo(str(repo)) as dvc:
        # the root pipeline's (dvc.yaml): study/dvc.yaml's outputs exist only where the study ran
        outs = [o for stage in dvc.stage.collect(str(repo / "dvc.yaml")) for o in stage.outs]
    return {o.def_path for o in outs if o.use_cache}, {o.def_path for o in outs if not o.use_cache}

def _git_ignored(repo: Path, path: str, env: dict) -> bool:
    return _sh(["git", "check-ignore", "-q", path], repo, env, check=False).returncode == 0

@pytest.fixture(scope="module")
def micro_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline") / "gmg"
    env = micro_copy(repo)
    first = _sh(["dvc", "repro"], repo, env)
    second = _sh(["dvc", "repro"], repo, env)
    status = _sh(["dvc", "status", "dvc.yaml", "--json"], repo, env)   # the pipeline (not data.dvc's raw inputs)
    untracked = _sh(["git", "ls-files", "--others", "--exclude-standard"], repo, env).stdout.split()
    return repo, first.stdout, second.stdout, status.stdout, untracked

@pytest.fixture(scope="module")
def fresh_clone(micro_repo, tmp_path_factory) -> tuple[Path, dict]:
    "The micro result committed as the lead commits it, then cloned: no DVC cache, only what git holds."
    repo, *_ = micro_repo
    env = _env(repo)
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-q", "-m", "micro results"], repo, env)
    clone = tmp_path_factory.mktemp("clone") / "gmg"
    _sh(["git", "clone", "-q", str(repo), str(clone)], repo, env)
    return clone, _env(clone)

def test_every_declared_output_exists(micro_repo):
    repo, first, *_ = micro_repo
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert STAGES <= set(lock["stages"]), sorted(STAGES - set(lock["stages"]))
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
    assert (headline.t_low <= headline["mean"]).all() and (headline["mean"] <= headline.t_high).all()
    verdicts = (repo / "results" / "report" / "verdicts.md").read_text()
    assert "Decoder beats encoder | **not tested at this profile**" in verdicts
    assert "GMG beats DST | **not tested at this profile** | only 2 paired seed(s)" in verdicts   # 2 < min_seeds
    figures = repo / "results" / "report" / "figures"
    assert (figures / "traversals_and_samples.png").stat().st_size > 0 and (figures / "dci_d_by_method.png").exists()
    assert (figures / "toy_figure2.png").exists() == (repo / "results" / "toy" / "figure2.png").exists()

def test_second_repro_has_nothing_to_do(micro_repo):
    repo, _, second, status, _ = micro_repo
    assert "Running stage" not in second, second
    assert json.loads(status) == {}, status

def test_small_outputs_are_committed_and_large_ones_ignored(micro_repo):
    "DVC's convention: `cache: false` files go to git, cached outputs are ignored by the .gitignore DVC wrote."
    repo, _, _, _, untracked = micro_repo
    env = _env(repo)
    cached, committed = _outputs_by_caching(repo)
    assert {"results/summary.csv", "results/report/headline.json", "results/report/dci_d.csv",
            "results/toy/metrics.json"} | {f"results/{d}/{r}/metrics.json" for d in ("runs", "eval") for r in RUNS} \
        <= committed
    assert {"results/cache/datasets", "results/report/figures"} | {f"results/runs/{r}/checkpoint.pt" for r in RUNS} \
        <= cached
    assert [p for p in sorted(cached) if not _git_ignored(repo, p, env)] == []
    assert [p for p in sorted(committed) if _git_ignored(repo, p, env)] == []
    # git sees exactly the committed outputs (files of the plot folders included), DVC's .gitignore files and the lock
    new = {p for p in untracked if p != "dvc.lock" and Path(p).name != ".gitignore"}
    assert new and all(p in committed or str(Path(p).parent) in committed for p in new), \
        sorted(p for p in new if p not in committed and str(Path(p).parent) not in committed)
    assert "dvc.lock" in untracked

def test_fresh_clone_shows_the_committed_numbers(fresh_clone, micro_repo):
    clone, env = fresh_clone
    repo, *_ = micro_repo
    metrics = json.loads(_sh(["dvc", "metrics", "show", "--json"], clone, env).stdout)
    shown = next(iter(metrics.values()))["data"]
    for run in RUNS:
        committed = json.loads((repo / "results" / "eval" / run / "metrics.json").read_text())
        assert shown[f"results/eval/{run}/metrics.json"]["data"] == committed
    assert "error" not in json.dumps(metrics).lower()
    assert "results/report/headline.json" in shown and "results/toy/metrics.json" in shown
    workspace = json.loads(_sh(["dvc", "exp", "show", "--json"], clone, env).stdout)[0]["data"]
    assert f"results/eval/{RUNS[0]}/metrics.json" in workspace["metrics"]
    plots = _sh(["dvc", "plots", "show", "--json"], clone, env)
    assert "failed" not in plots.stderr and "results/report/dci_d.csv" in json.loads(plots.stdout)["data"]

def test_fresh_clone_dry_runs(fresh_clone):
    "`--dry` lists every stage (nothing is cached in a clone) and changes nothing."
    clone, env = fresh_clone
    for command in (["dvc", "repro", "--dry"], ["dvc", "exp", "run", "--dry", "-S", "train.lam.gmg=1"]):
        out = _sh(command, clone, env).stdout
        assert {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")} == STAGES, out
    assert _sh(["git", "status", "--porcelain"], clone, env).stdout == ""

def test_bad_parameter_stops_the_first_stage(fresh_clone):
    "`dvc exp run -S train.cost=nonsense` fails at the first stage's parameter check, before any notebook runs."
    clone, env = fresh_clone
    run = _sh(["dvc", "exp", "run", "-S", "train.cost=nonsense"], clone, env, check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "gmg.params: params.yaml: train (run dsprites-beta_vae-none): unknown cost 'nonsense': expected one of " \
           "sqeuclidean, scaled_sqeuclidean, cosine" in out, out
    assert out.count("Running stage") == 1 and "Executing" not in out and "Traceback" not in out, out
    _sh(["git", "checkout", "--", "params.yaml"], clone, env)   # dvc exp run leaves the changed params in place

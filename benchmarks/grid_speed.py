"""Wall time of the whole pipeline: serial `dvc repro` against `python -m gmg.grid --jobs N`, back to back.

Each runner gets its own fresh copy of the repository (what `git clone` of the working tree would hold: tracked
and untracked-but-not-ignored files, plus `data/`), made its own git repository, with no DVC cache and no results.
The grid starts a local Ray instance on this machine with the profile's `resources.yaml` (on the `cpu` profile one
CPU slot per training, so `--jobs 2` runs two trainings side by side). Afterwards the two `dvc.lock` files are
compared stage by stage (same output hashes = the same results, byte for byte).

The serial run keeps the profile's own `threads` (the cpu profile's 2: what `dvc repro` does on this machine);
the grid's copy sets `threads` (and the evaluation's `n_jobs`) to `--threads-per-job` (default 1: "2 single-thread
workers"), so its trainings do not oversubscribe the cores. Torch's CPU kernels may round differently with another
thread count, so on the cpu profile the two runs' hashes are not expected to match; the script reports how far
their headline metric (DCI disentanglement) moved instead. `--out` writes everything as JSON (the table in nbs/20_speed.ipynb
is generated from `results/benchmarks/grid_speed_cpu.json` by tools/readme_tables.py).

    python benchmarks/grid_speed.py --out results/benchmarks/grid_speed_cpu.json   # cpu profile (~1 h)
    python benchmarks/grid_speed.py --profile micro      # a seconds-per-stage smoke run of the script itself
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
# the micro profile's grid (as in tests/test_grid.py): one dataset, two regularizers, two seeds
MICRO = {"profile": "micro", "datasets": {"names": "dsprites", "build_cache": True},
         "train": {"datasets": ["dsprites"], "models": ["beta_vae"], "regularizers": ["none", "gmg"], "seeds": [0, 1]},
         "report": {"n_boot": 200},
         "toy": {"points": 16, "steps": 3, "eval_points": 32, "seeds": "1", "gw_iter": 2}}


def _working_tree() -> list[str]:
    "What a clone of the working tree holds; without git (a copied folder), every file but caches and outputs."
    git = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, text=True)
    if git.returncode == 0:
        return git.stdout.split("\0")
    skip = {".git", ".whl", "__pycache__", ".ipynb_checkpoints", "cache", "tmp"}   # .dvc/cache, .dvc/tmp
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts[:-1])]


def fresh_copy(dest: Path, profile: str, threads: int | None = None, params: dict | None = None) -> dict:
    """Copy the working tree into `dest` as a new git repository; returns the environment to run in it.
    `profile`: set in the copy's params.yaml. `params`: sections merged into its params.yaml (default: the micro
    grid for the micro profile). `threads`: set the profile's train/evaluate `threads` (and the evaluation's
    `n_jobs`) to it in the copy."""
    listed = _working_tree()
    for rel in filter(None, listed):   # not results/: DVC's outputs (of a run in the checkout) are no clone's
        if (ROOT / rel).is_file() and not rel.startswith("results/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    if (ROOT / "data").is_dir():
        shutil.copytree(ROOT / "data", dest / "data")
    overrides = MICRO if params is None and profile == "micro" else (params or {})
    if profile != "cpu" or overrides:   # the committed params.yaml and dvc.lock are the cpu profile's
        merged = yaml.safe_load((dest / "params.yaml").read_text())
        for key, value in {**overrides, "profile": profile}.items():
            merged[key] = {**(merged.get(key) or {}), **value} if isinstance(value, dict) else value
        (dest / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
        (dest / "dvc.lock").unlink(missing_ok=True)
    if threads is not None:
        for stage, keys in (("train", ["threads"]), ("evaluate", ["threads", "n_jobs"])):
            path = dest / "profiles" / profile / f"{stage}.yaml"
            settings = yaml.safe_load(path.read_text())
            path.write_text(yaml.safe_dump({**settings, **{k: threads for k in keys}}, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(dest), MPLBACKEND="Agg", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@gmg.local", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@gmg.local")
    env.pop("DVC_ROOT", None)
    for args in (["git", "init", "-q"], ["dvc", "config", "core.analytics", "false"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "benchmark copy"]):
        subprocess.run(args, cwd=dest, env=env, check=True, capture_output=True)
    return env


def timed(args: list[str], cwd: Path, env: dict, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as fh:
        done = subprocess.run(args, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}); see {log}")
    return seconds


def lock_stages(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def dci_shift(a: Path, b: Path) -> dict:
    "Largest |difference| of DCI disentanglement between the two runs' evaluations, and how many were compared."
    shifts = []
    for metrics in sorted((a / "results" / "eval").glob("*/metrics.json")):
        other = b / metrics.relative_to(a)
        if other.is_file():
            x, y = (json.loads(p.read_text()).get("dci_disentanglement") for p in (metrics, other))
            if x is not None and y is not None:
                shifts.append(abs(x - y))
    return {"runs_compared": len(shifts), "max_abs_dci_d_difference": max(shifts, default=None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=["cpu", "micro"])
    parser.add_argument("--jobs", type=int, default=2, help="stages the grid runs at once")
    parser.add_argument("--threads-per-job", type=int, default=1,
                        help="torch threads of each training/evaluation in the grid's copy (0: the profile's own)")
    parser.add_argument("--keep", action="store_true", help="keep the two copies (their paths are printed)")
    parser.add_argument("--out", type=Path, help="write the measurements here as JSON")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grid-speed-"))
    rows, runners = [], [("dvc repro (serial)", ["dvc", "repro"]),
                         (f"gmg.grid --jobs {args.jobs}", [sys.executable, "-m", "gmg.grid", "--jobs", str(args.jobs)])]
    try:
        copies = []
        for i, (name, _) in enumerate(runners):   # both copies first: the same tree, whatever changes meanwhile
            repo = work / name.split()[0].replace(".", "_")
            repo.mkdir()
            threads = args.threads_per_job if i == 1 and args.threads_per_job > 0 else None
            copies.append((repo, fresh_copy(repo, args.profile, threads)))
        load = []
        for (name, command), (repo, env) in zip(runners, copies):
            load.append(os.getloadavg()[0])
            seconds = timed(command, repo, env, work / f"{repo.name}.log")
            rows.append((name, seconds, repo))
            print(f"{name}: {seconds:.1f} s", flush=True)
        serial, grid = (lock_stages(r[2]) for r in rows)
        same = sorted(s for s in serial if serial[s] == grid.get(s))
        result = {"profile": args.profile, "stages": len(serial), "cpus": os.cpu_count(), "machine": platform.machine(),
                  "jobs": args.jobs, "grid_threads_per_job": args.threads_per_job or "profile",
                  "load_average_before": [round(x, 2) for x in load],
                  "runs": [{"runner": name, "seconds": round(seconds, 1), "speedup_vs_serial": round(rows[0][1] / seconds, 3)}
                           for name, seconds, _ in rows],
                  "lock_entries_identical": len(same),
                  "lock_entries_differing": sorted(set(serial) - set(same)),
                  **dci_shift(rows[0][2], rows[1][2])}
        print(f"\nprofile {args.profile}, {len(serial)} stages, {os.cpu_count()} CPUs\n")
        print("| runner | wall time | vs serial |\n|---|---:|---:|")
        for name, seconds, _ in rows:
            print(f"| {name} | {seconds / 60:.1f} min ({seconds:.0f} s) | {rows[0][1] / seconds:.2f}× |")
        print(f"\ndvc.lock entries identical between the two runs: {len(same)} of {len(serial)}; "
              f"largest DCI-D difference {result['max_abs_dci_d_difference']} over {result['runs_compared']} runs")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

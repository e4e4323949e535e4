"""Wall time of the whole pipeline: serial `dvc repro` against `python -m gmg.grid --jobs N`, back to back.

Each runner gets its own fresh copy of the repository (what `git clone` of the working tree would hold: tracked
and untracked-but-not-ignored files, plus `data/`), made its own git repository, with no DVC cache and no results.
The grid starts a local Ray instance on this machine with the profile's `resources.yaml` (on the `cpu` profile one
CPU slot per training, so `--jobs 2` runs two trainings side by side). Afterwards the two `dvc.lock` files are
compared stage by stage (same output hashes = the same results, byte for byte).

    python benchmarks/grid_speed.py                      # the cpu profile: 18 trainings + 18 evaluations (~1 h)
    python benchmarks/grid_speed.py --profile micro      # a seconds-per-stage smoke run of the script itself
"""
from __future__ import annotations
import argparse, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
# the micro profile's grid (as in tests/test_grid.py): one dataset, two regularizers, two seeds
MICRO = {"profile": "micro", "datasets": {"names": "dsprites", "build_cache": True},
         "train": {"datasets": ["dsprites"], "models": ["beta_vae"], "regularizers": ["none", "gmg"], "seeds": [0, 1]},
         "report": {"n_boot": 200},
         "toy": {"points": 16, "steps": 3, "eval_points": 32, "seeds": "1", "gw_iter": 2}}


def fresh_copy(dest: Path, profile: str) -> dict:
    "Copy the working tree into `dest` as a new git repository; returns the environment to run in it."
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):   # not results/: DVC's outputs (of a run in the checkout) are no clone's
        if (ROOT / rel).is_file() and not rel.startswith("results/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    if (ROOT / "data").is_dir():
        shutil.copytree(ROOT / "data", dest / "data")
    if profile != "cpu":   # the committed params.yaml and dvc.lock are the cpu profile's
        params = yaml.safe_load((dest / "params.yaml").read_text())
        for key, value in MICRO.items():
            params[key] = {**(params.get(key) or {}), **value} if isinstance(value, dict) else value
        params["profile"] = profile
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        (dest / "dvc.lock").unlink(missing_ok=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=["cpu", "micro"])
    parser.add_argument("--jobs", type=int, default=2, help="stages the grid runs at once")
    parser.add_argument("--keep", action="store_true", help="keep the two copies (their paths are printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grid-speed-"))
    rows, runners = [], [("dvc repro (serial)", ["dvc", "repro"]),
                         (f"gmg.grid --jobs {args.jobs}", [sys.executable, "-m", "gmg.grid", "--jobs", str(args.jobs)])]
    try:
        copies = []
        for name, _ in runners:   # both copies first: the same tree, whatever changes in the checkout meanwhile
            repo = work / name.split()[0].replace(".", "_")
            repo.mkdir()
            copies.append((repo, fresh_copy(repo, args.profile)))
        for (name, command), (repo, env) in zip(runners, copies):
            seconds = timed(command, repo, env, work / f"{repo.name}.log")
            rows.append((name, seconds, repo))
            print(f"{name}: {seconds:.1f} s", flush=True)
        serial, grid = (lock_stages(r[2]) for r in rows)
        same = sum(serial[s] == grid.get(s) for s in serial)
        print(f"\nprofile {args.profile}, {len(serial)} stages, {os.cpu_count()} CPUs\n")
        print("| runner | wall time | vs serial |\n|---|---:|---:|")
        for name, seconds, _ in rows:
            print(f"| {name} | {seconds / 60:.1f} min ({seconds:.0f} s) | {rows[0][1] / seconds:.2f}× |")
        print(f"\ndvc.lock entries identical between the two runs: {same} of {len(serial)}"
              + ("" if same == len(serial) else
                 f" (differ: {', '.join(sorted(s for s in serial if serial[s] != grid.get(s)))})"))
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""One pipeline run of a profile from a fresh copy of this repository, with everything to bring back in one folder.

Made for the `gpu` profile on a GPU machine (`benchmarks/gpu_profile.sh` installs and then calls this), and
tested on the CPU with the `micro` profile (tests/test_profile_run.py). Steps, each timed:
1. check the device the profile asks for (`device: cuda` in its train.yaml needs CUDA: refused otherwise);
2. copy the working tree into a fresh git repository (no results, no DVC cache; `params.yaml` set to the profile);
3. a pilot (`benchmarks/packing.py`): aggregate training steps/s of one run alone and of as many as the profile
   packs on the device, for β-VAE and + GMG; from it, the projected training time of the profile's grid;
4. the pipeline through the grid executor (`python -m gmg.grid`: local Ray, the profile's `resources.yaml`);
5. collect into `--out`: `dvc.lock` (the hashes of every output), `params.yaml` and the profile's files, the small
   results (summary, report tables, verdicts, headline, figures, per-run metrics), the grid's logs, the pilot and
   `manifest.json` (device, versions, step timings, the grid's exit status).

    python benchmarks/profile_run.py --profile gpu --out results/gpu-run
    python benchmarks/profile_run.py --profile micro --out /tmp/micro-run     # the CPU rehearsal
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import yaml
from grid_speed import ROOT, fresh_copy

# what comes back: small files only (the large outputs' hashes are in dvc.lock)
COLLECT = ["dvc.lock", "params.yaml", "results/summary.csv", "results/report/*.md", "results/report/*.json",
           "results/report/*.csv", "results/report/figures/*", "results/eval/*/metrics.json", "results/eval/*/run.json",
           "results/runs/*/metrics.json", "results/runs/*/traversal.png", "results/toy/metrics.json",
           "results/toy/table.md", "results/grid-logs/*.log"]


def profile_settings(profile: str) -> dict:
    folder = ROOT / "profiles" / profile
    if not (folder / "train.yaml").is_file():
        known = sorted(p.name for p in (ROOT / "profiles").iterdir() if (p / "train.yaml").is_file())
        sys.exit(f"profile_run: unknown profile {profile!r}: expected one of {', '.join(known)}")
    return {name: yaml.safe_load((folder / f"{name}.yaml").read_text()) for name in ("train", "evaluate", "resources")}


def check_device(train: dict) -> str:
    import torch
    if train.get("device") == "cuda" and not torch.cuda.is_available():
        sys.exit("profile_run: this profile trains on CUDA (device: cuda) and torch sees no CUDA device here")
    return torch.cuda.get_device_name() if torch.cuda.is_available() else (platform.processor() or platform.machine())


def grid_size(repo: Path) -> int:
    train = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    return len(train["datasets"]) * len(train["models"]) * len(train["regularizers"]) * len(train["seeds"])


def pilot(settings: dict, runs: int, out: Path, env: dict) -> dict:
    "benchmarks/packing.py at 1 and at the profile's packing (or the grid's size, if smaller)."
    share = settings["resources"].get("stages", {}).get("train", {}).get("gpus", 0)
    device = "cuda" if settings["train"].get("device") == "cuda" else "cpu"
    packed = min(runs, max(1, round(1 / share)) if share else os.cpu_count() or 1)
    small = device == "cpu"   # the CPU rehearsal: a few steps, no pre-training
    command = [sys.executable, str(ROOT / "benchmarks" / "packing.py"), "--device", device,
               "--procs", ",".join(str(n) for n in sorted({1, packed})), "--steps", "5" if small else "200",
               "--pretrain", "0" if small else "200", "--out", str(out / "pilot.json")]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    (out / "pilot.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"profile_run: the pilot failed:\n{done.stderr[-3000:]}")
    rows = json.loads((out / "pilot.json").read_text())["rows"]
    rate = {(r["configuration"], r["runs"]): r["aggregate_steps_per_s"] for r in rows}
    steps = settings["train"]["steps"]
    # the grid mixes regularizers; a β-VAE step and a GMG step bound the others (DST costs about a β-VAE step)
    bounds = {name: runs * steps / rate[(name, packed)] for name in ("β-VAE", "+ GMG (decoder, Cos)")}
    return {"packed_runs": packed, "aggregate_steps_per_s": {f"{k[0]} × {k[1]}": v for k, v in rate.items()},
            "projected_training_s_all_beta_vae": bounds["β-VAE"],
            "projected_training_s_all_gmg": bounds["+ GMG (decoder, Cos)"]}


def collect(repo: Path, out: Path) -> list[str]:
    copied = []
    for pattern in COLLECT:
        for path in sorted(repo.glob(pattern)):
            if path.is_file():
                rel = path.relative_to(repo)
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out / rel)
                copied.append(str(rel))
    return copied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="gpu")
    ap.add_argument("--out", type=Path, required=True, help="folder for everything to bring back (created)")
    ap.add_argument("--workdir", type=Path, help="where the fresh copy goes (default: a temporary folder, kept)")
    ap.add_argument("--skip-pilot", action="store_true", help="go straight to the pipeline")
    ap.add_argument("--pilot-only", action="store_true", help="stop after the pilot (its projection decides sizes)")
    ap.add_argument("--param", action="append", default=[], metavar="SECTION.KEY=YAML",
                    help="a params.yaml override in the copy, e.g. train.seeds=[0,1] (repeatable)")
    args = ap.parse_args()
    settings = profile_settings(args.profile)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings, manifest = {}, {"profile": args.profile, "python": platform.python_version()}
    t = time.perf_counter()
    manifest["device"] = check_device(settings["train"])
    repo = (args.workdir or Path(tempfile.mkdtemp(prefix=f"profile-{args.profile}-"))).resolve()
    repo.mkdir(parents=True, exist_ok=True)
    overrides = {}
    for item in args.param:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not (section and name and _):
            ap.error(f"--param expects SECTION.KEY=VALUE, got {item!r}")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    env = fresh_copy(repo, args.profile, params=overrides or None)
    manifest["copy"] = str(repo)
    timings["setup_s"] = time.perf_counter() - t
    runs = grid_size(repo)
    manifest["trainings"] = runs
    if not args.skip_pilot:
        t = time.perf_counter()
        manifest["pilot"] = pilot(settings, runs, out, env)
        timings["pilot_s"] = time.perf_counter() - t
        print(f"pilot: {json.dumps(manifest['pilot'], indent=1)}", flush=True)
        if args.pilot_only:
            manifest["timings"] = {k: round(v, 1) for k, v in timings.items()}
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            return
    t = time.perf_counter()
    with open(out / "grid.txt", "w") as log:
        grid = subprocess.run([sys.executable, "-m", "gmg.grid"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    timings["pipeline_s"] = time.perf_counter() - t
    manifest["grid_exit_status"] = grid.returncode
    manifest["collected"] = collect(repo, out)
    manifest["timings"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"profile {args.profile}: pipeline {timings['pipeline_s']:.0f} s, exit status {grid.returncode}; "
          f"{len(manifest['collected'])} files in {out}", flush=True)
    sys.exit(grid.returncode)


if __name__ == "__main__":
    main()

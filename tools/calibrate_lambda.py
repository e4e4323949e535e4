"""λ per regularizer, calibrated on pilot seeds by a rule fixed before any run: the regularizer's share of the update.

    python tools/calibrate_lambda.py run [--jobs 2] [--workdir /tmp/gmg-calibration]   # pilot trainings (resume)
    python tools/calibrate_lambda.py collect   # results/calibration/ from the finished pilot runs (no training)
    python tools/calibrate_lambda.py table     # results/calibration/lambda.{csv,md} from pilot_runs.json
    python tools/calibrate_lambda.py check     # exit 1 unless params.yaml's train.lam is the table's choice

The rule (written before the first pilot ran, and not changed after):
- Quantity: `reg_share` = λ‖∇θ R‖ / ‖∇θ (total loss)‖ over the regularized network's parameters (the decoder for
  the decoder target), logged by `gmg.train` on every logged step; a run's value is its mean over the second half of
  training (`reg_share_mean` in the run's metrics.json). It measures how much of the update the regularizer is —
  not whether it helps: the outcome metric (DCI-D) is never looked at, so the choice cannot be tuned on it.
- Target: TARGET_SHARE = 0.3, a third of the decoder's update, for every regularizer (the same strength of
  intervention, so a comparison between regularizers is a comparison of what they ask for, not of how loudly).
- Runs: the pipeline's grid settings (params.yaml `train`: β, target, cost, ε0) and the cpu profile's training
  settings (profiles/cpu/train.yaml: batch, lr, logging) for the first PILOT_STEPS = 300 of its steps (a 2-core
  budget: the share is the mean over steps 150–300), on both datasets of the grid, with PILOT_SEED (1000, a pilot
  seed: `gmg.params` refuses seeds ≥ 1000 in the reported grid), one thread per run.
- Search, per regularizer: ROUNDS rounds from START[regularizer]. A round trains both datasets at one λ; its share
  s is the geometric mean of the datasets' shares. The next λ solves the share of two orthogonal gradients,
  s = λa / √(λ²a² + b²), for the target given the measured s (odds o(s) = s/√(1 − s²), s capped at 0.95):
  λ ← λ · o(TARGET) / o(s), rounded to one significant digit. The chosen λ is the run λ whose share is closest to
  the target in |log(s / TARGET)|.
Pilot runs live in `--workdir` (not committed; a rerun resumes or skips finished runs); the committed result is
the table: every pilot run's λ, share, and final reconstruction loss.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "calibration"
PILOT_SEED = 1000
TARGET_SHARE = 0.3
ROUNDS = 3
START = {"dst": 1000.0, "gmg": 1.0e5, "jacobian": 1000.0}   # first guesses (one 100-step probe); rounds correct them
PILOT_STEPS = 300
REGULARIZERS = tuple(START)


def _settings() -> tuple[dict, list[str]]:
    "The TrainConfig fields every pilot run shares, and the grid's datasets."
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    train = params["train"]
    profile = yaml.safe_load((ROOT / "profiles" / "cpu" / "train.yaml").read_text())
    fields = {k: profile[k] for k in ("batch_size", "lr", "log_every")}
    fields.update(steps=PILOT_STEPS, checkpoint_every=PILOT_STEPS // 2)
    fields.update({k: train[k] for k in ("beta", "hfs_gamma", "target", "cost", "eps0")})
    fields.update(model="beta_vae", seed=PILOT_SEED, device="cpu", threads=1)
    return fields, list(train["datasets"])


def round_1sig(x: float) -> float:
    return float(f"{x:.0e}")


def odds(share: float) -> float:
    s = min(max(share, 1e-12), 0.95)
    return s / math.sqrt(1 - s * s)


def next_lam(lam: float, share: float) -> float:
    return round_1sig(lam * odds(TARGET_SHARE) / odds(share))


def run_dir(workdir: Path, regularizer: str, lam: float, dataset: str, eps0: float) -> Path:
    "A pilot run's folder; GMG's also names its ε0 (the only setting here that DST and the Jacobian ignore)."
    return workdir / (f"{regularizer}-lam{lam:g}" + (f"-eps{eps0:g}" if regularizer == "gmg" else "") + f"-{dataset}")


def train_one(folder: Path, fields: dict) -> dict:
    "Train (or resume, or skip) one pilot run in a subprocess; its metrics.json."
    metrics = folder / "metrics.json"
    if metrics.is_file() and json.loads(metrics.read_text()).get("finished"):
        return json.loads(metrics.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "results" / "cache" / "datasets"
    if cache.is_dir():
        fields = {**fields, "cache_dir": str(cache)}
    args = [f"{k}={json.dumps(v)}" for k, v in fields.items()]
    proc = subprocess.run([sys.executable, "-m", "gmg.train", str(folder), *args, "--no-progress"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pilot run {folder.name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(metrics.read_text())


def share_of_round(results: dict[str, dict]) -> float:
    shares = [results[d]["reg_share_mean"] for d in sorted(results)]
    return math.exp(sum(math.log(max(s, 1e-12)) for s in shares) / len(shares))


def calibrate(regularizer: str, workdir: Path, fields: dict, datasets: list[str], pool) -> list[dict]:
    "The rounds of one regularizer: a list of {lam, dataset → metrics, share}."
    lam, rounds = START[regularizer], []
    for _ in range(ROUNDS):
        cfg = {**fields, "regularizer": regularizer, "lam": lam}
        futures = {d: pool.submit(train_one, run_dir(workdir, regularizer, lam, d, fields["eps0"]), {**cfg, "dataset": d})
                   for d in datasets}
        results = {d: f.result() for d, f in futures.items()}
        share = share_of_round(results)
        rounds.append({"lam": lam, "runs": results, "share": share})
        print(f"{regularizer}: λ = {lam:g} → share {share:.3g}", flush=True)
        lam = next_lam(lam, share)
        if any(r["lam"] == lam for r in rounds):   # the rule returned to a λ already run: nothing new to learn
            break
    return rounds


def run(workdir: Path, jobs: int) -> None:
    fields, datasets = _settings()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool, \
            concurrent.futures.ThreadPoolExecutor(len(REGULARIZERS)) as drivers:
        list(drivers.map(lambda r: calibrate(r, workdir, fields, datasets, pool), REGULARIZERS))
    collect(workdir)


def _finished(folder: Path) -> dict | None:
    metrics = folder / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        if m.get("finished"):
            return m
    return None


def collect(workdir: Path) -> None:
    """Replay the rule over the finished pilot runs in `workdir` (no training): each regularizer's rounds up to the
    first one not finished, then pilot_runs.json and the table. A regularizer with fewer rounds than the rule asks
    for is marked incomplete (its choice is provisional), so a session that ran out of time says so."""
    fields, datasets = _settings()
    rows, complete = [], {}
    for regularizer in REGULARIZERS:
        lam, seen = START[regularizer], []
        while len(seen) < ROUNDS and lam not in seen:
            runs = {d: _finished(run_dir(workdir, regularizer, lam, d, fields["eps0"])) for d in datasets}
            if any(m is None for m in runs.values()):
                break
            share = share_of_round(runs)
            rows += [{"regularizer": regularizer, "lam": lam, "dataset": d, "reg_share_mean": m["reg_share_mean"],
                      "rec_final": m.get("rec"), "round_share": share} for d, m in sorted(runs.items())]
            seen.append(lam)
            lam = next_lam(lam, share)
        complete[regularizer] = len(seen) == ROUNDS or lam in seen
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pilot_runs.json").write_text(json.dumps({"target_share": TARGET_SHARE, "pilot_seed": PILOT_SEED,
                                                     "settings": fields, "complete": complete, "rows": rows},
                                                    indent=2) + "\n")
    table()


def chosen(rows: list[dict]) -> dict[str, float]:
    "The rule's choice per regularizer: the run λ whose round share is closest to the target (log ratio)."
    best = {}
    for r in rows:
        score = abs(math.log(max(r["round_share"], 1e-12) / TARGET_SHARE))
        if r["regularizer"] not in best or score < best[r["regularizer"]][0]:
            best[r["regularizer"]] = (score, r["lam"])
    return {k: v[1] for k, v in sorted(best.items())}


def table() -> None:
    import pandas as pd
    data = json.loads((OUT / "pilot_runs.json").read_text())
    frame = pd.DataFrame(data["rows"])
    frame.to_csv(OUT / "lambda.csv", index=False, float_format="%.6g")
    pick = chosen(data["rows"])
    wide = frame.pivot_table(index=["regularizer", "lam"], columns="dataset", values="reg_share_mean").reset_index()
    wide["share (geometric mean)"] = frame.groupby(["regularizer", "lam"])["round_share"].first().values
    wide["chosen"] = [("**yes**" if pick[r] == l else "") for r, l in zip(wide.regularizer, wide.lam)]
    s = data["settings"]
    text = (f"# λ per regularizer (pilot seed {data['pilot_seed']}, target share {data['target_share']})\n\n"
            f"Generated by `python tools/calibrate_lambda.py table` from `pilot_runs.json`; the rule is in the tool's "
            f"docstring. Settings: {s['steps']} steps, batch {s['batch_size']}, lr {s['lr']}, β = {s['beta']}, "
            f"target {s['target']}, cost {s['cost']}, ε0 = {s['eps0']}. Share: λ‖∇R‖/‖∇(total loss)‖ over the "
            f"regularized network, mean over the second half of training.\n\n"
            + wide.to_markdown(index=False, floatfmt=".3g") + "\n\n"
            + "Chosen: " + ", ".join(f"{r} λ = {l:g}" + ("" if data.get("complete", {}).get(r, True)
                                                       else f" (provisional: fewer than {ROUNDS} rounds ran)")
                                     for r, l in pick.items()) + "\n")
    (OUT / "lambda.md").write_text(text)
    print(text)


def check() -> int:
    data = json.loads((OUT / "pilot_runs.json").read_text())
    pick = chosen(data["rows"])
    lam = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["lam"]
    wrong = {r: (lam.get(r), v) for r, v in pick.items() if float(lam.get(r, float("nan"))) != v}
    if wrong:
        print("params.yaml train.lam differs from the calibration: " +
              ", ".join(f"{r}: {a} vs {b:g}" for r, (a, b) in wrong.items()), file=sys.stderr)
        return 1
    print("params.yaml train.lam is the calibration's choice: " + ", ".join(f"{r} {v:g}" for r, v in pick.items()))
    return 0


def pilot_command_line(argv, doc: str, workdir: Path, run, collect, table, check) -> int:
    "The command line of a pilot tool (this one, choose_beta.py): run / collect / table / check."
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "collect", "table", "check"])
    parser.add_argument("--workdir", type=Path, default=workdir)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.workdir, args.jobs)
    elif args.command == "collect":
        collect(args.workdir)
    elif args.command == "table":
        table()
    else:
        return check()
    return 0


def main(argv=None) -> int:
    return pilot_command_line(argv, __doc__, Path("/tmp/gmg-calibration"), run, collect, table, check)


if __name__ == "__main__":
    sys.exit(main())

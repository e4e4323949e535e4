"""How many training steps the study can afford on this CPU, computed from measured rates before it runs.

    python tools/study_sizing.py measure    # results/study/stage_times_cpu_1t.json: a stage's fixed and per-step costs
    python tools/study_sizing.py            # print the arithmetic for the committed rates and stage times
    python tools/study_sizing.py --write    # ... and write the steps into study/params.yaml (study.steps)

The budget (fixed before the study runs): BUDGET_S = 2.5 h of wall time on this 2-core machine, with JOBS = 2
single-thread stages at a time (`python -m gmg.grid ... --jobs 2`), for the β pilot (tools/choose_beta.py: the base
model at each β of STUDY_BETAS on each dataset, trained and evaluated) followed by the study (datasets × regularizers ×
seeds trained and evaluated, then the report). The pilot trains at the study's steps, so both depend on them.

The model of the time:
- a training of S steps takes S · k · f_d / r_(regularizer, precision) + c_d seconds: r, steps/s at 1 thread from
  study/design_inputs/train_speed_cpu_1t.json (benchmarks/train_speed.py as run at design time, on dSprites: rows
  "β-VAE", "+ DST (decoder, Cos)", "+ GMG (decoder, Cos)", and their ", bf16 autocast" rows; a DST row missing in bfloat16 is DST's float32
  time relative to the β-VAE applied to the bfloat16 β-VAE rate); k, the in-stage factor: what a β-VAE step costs
  inside a train stage (batches, logging every log_every steps, checkpoints; beside other work on the other core,
  as two stages side by side are) over the benchmark's time per step; f_d, a dataset's time per step relative to
  dSprites'; c_d, the train stage's fixed cost (kernel start, data, figures); k, f_d and c_d measured here (`measure`);
- an evaluation takes e_d seconds, the report t_report (measured here, at the study profile's sizes, 1 thread);
- a phase whose stages add up to W seconds and whose longest chain of dependent stages (a training, its evaluation,
  then the report) takes L finishes within W/2 + L/2 on two cores (Graham's bound for list scheduling with
  precedence: while one core idles, the other works on the longest remaining chain);
- pilot and study run one after the other; steps: the largest multiple of STEP_UNIT whose T_pilot + T_study ≤ BUDGET_S.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 2.5 * 3600
JOBS = 2
STEP_UNIT = 250
# the rates the study was sized with, frozen (results/benchmarks/ holds the latest run of the benchmark)
RATES = Path("study/design_inputs/train_speed_cpu_1t.json")
TIMES = Path("results/study/stage_times_cpu_1t.json")
STUDY = Path("study/params.yaml")
ROWS = {("none", "float32"): "β-VAE", ("dst", "float32"): "+ DST (decoder, Cos)",
        ("gmg", "float32"): "+ GMG (decoder, Cos)", ("none", "bfloat16"): "β-VAE, bf16 autocast",
        ("dst", "bfloat16"): "+ DST (decoder, Cos), bf16 autocast",
        ("gmg", "bfloat16"): "+ GMG (decoder, Cos), bf16 autocast"}
LABELS = {"none": "β-VAE", "dst": "+DST", "gmg": "+GMG"}
MEASURE_STEPS = (40, 240)   # two training lengths per dataset: their difference is the per-step cost


# ---------------------------------------------------------------------------------------------- study/params.yaml

def read_study(root: Path = ROOT) -> dict:
    "The `study` section of study/params.yaml."
    return yaml.safe_load((root / STUDY).read_text())["study"]


def profile_file(study: dict, name: str, root: Path = ROOT) -> dict:
    "profiles/<study.profile>/<name>.yaml of the study."
    return yaml.safe_load((root / "profiles" / study["profile"] / f"{name}.yaml").read_text()) or {}


def set_study_value(key: str, value, root: Path = ROOT) -> None:
    """Write `study.<key>: value` into study/params.yaml, keeping the line's comment and every other line as it is
    (the file is documentation too); the key must be a direct child of `study:`, on one line."""
    path = root / STUDY
    text = path.read_text()
    line = re.compile(rf"^(  {re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]*#[^\n]*)?$", re.M)
    found = line.findall(text)
    if len(found) != 1:
        raise ValueError(f"{path}: expected one line `  {key}: ...` under study:, found {len(found)}")
    dumped = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    new = line.sub(lambda m: f"{m.group(1)}{dumped}{m.group(3) and '  ' + m.group(3).strip() or ''}", text)
    if yaml.safe_load(new)["study"][key] != value:
        raise ValueError(f"{path}: writing {key} = {value!r} did not read back")
    path.write_text(new)


# ---------------------------------------------------------------------------------------------- the arithmetic

def training_rates(bench: dict, precision: str) -> dict[str, tuple[float, str]]:
    "steps/s at 1 thread per regularizer (none, dst, gmg) at `precision`, each with where it comes from."
    by = {r["configuration"]: float(r["steps_per_second"]) for r in bench["rows"]}
    rates = {}
    for reg in ("none", "dst", "gmg"):
        row = ROWS[(reg, precision)]
        if row in by:
            rates[reg] = (by[row], f'"{row}"')
        elif reg == "dst" and precision == "bfloat16" and {ROWS[("none", "float32")], ROWS[("dst", "float32")],
                                                           ROWS[("none", "bfloat16")]} <= set(by):
            relative = by[ROWS[("none", "float32")]] / by[ROWS[("dst", "float32")]]
            rates[reg] = (by[ROWS[("none", "bfloat16")]] / relative,
                          f"the bf16 β-VAE rate ÷ DST's float32 time relative to the β-VAE ({relative:.3f})")
        else:
            raise ValueError(f"no rate for {LABELS[reg]} in {precision}: the benchmark has no row {row!r} "
                             f"(rows: {', '.join(by)})")
    return rates


def chain_phase(trainings: list[tuple[str, str]], steps: int, rates: dict, times: dict, report: bool) -> dict:
    """Work W, longest chain L and Graham's bound W/2 + L/2 (JOBS = 2) of one phase: `trainings` (dataset,
    regularizer) each followed by its evaluation, then the report if `report`."""
    def train_s(dataset, reg):
        return steps * times["in_stage_factor"] * times["per_step_factor"][dataset] / rates[reg][0] + times["train_fixed_s"][dataset]
    train = sum(train_s(d, r) for d, r in trainings)
    evaluate = sum(times["evaluate_s"][d] for d, _ in trainings)
    report_s = times["report_s"] if report else 0.0
    work = train + evaluate + report_s
    longest = max(train_s(d, r) + times["evaluate_s"][d] for d, r in trainings) + report_s
    return {"trainings": len(trainings), "train_s": train, "evaluate_s": evaluate, "report_s": report_s,
            "work_s": work, "longest_chain_s": longest, "bound_s": work / JOBS + longest * (1 - 1 / JOBS)}


def plan(steps: int, rates: dict, times: dict, datasets: list[str], regularizers: list[str], seeds: int,
         betas: int) -> dict:
    "The pilot's and the study's phases at `steps`, and their total."
    pilot = chain_phase([(d, "none") for _ in range(betas) for d in datasets], steps, rates, times, report=False)
    study = chain_phase([(d, r) for d in datasets for r in regularizers for _ in range(seeds)], steps, rates, times,
                        report=True)
    return {"steps": steps, "pilot": pilot, "study": study, "total_s": pilot["bound_s"] + study["bound_s"]}


def size(rates: dict, times: dict, datasets: list[str], regularizers: list[str], seeds: int, betas: int,
         budget_s: float = BUDGET_S) -> tuple[int, dict, dict]:
    """The most steps (a multiple of STEP_UNIT) whose pilot + study fit `budget_s`: (steps, its plan, the plan at
    STEP_UNIT more steps, which does not fit)."""
    fixed = plan(0, rates, times, datasets, regularizers, seeds, betas)["total_s"]
    per_step = plan(1, rates, times, datasets, regularizers, seeds, betas)["total_s"] - fixed   # linear in steps
    steps = STEP_UNIT * math.floor((budget_s - fixed) / per_step / STEP_UNIT) if per_step > 0 else 0
    while steps > 0 and plan(steps, rates, times, datasets, regularizers, seeds, betas)["total_s"] > budget_s:
        steps -= STEP_UNIT   # (rounding at the edge)
    if steps < STEP_UNIT:
        raise ValueError(f"not even {STEP_UNIT} steps fit {budget_s:.0f} s: the fixed costs alone take {fixed:.0f} s")
    return (steps, plan(steps, rates, times, datasets, regularizers, seeds, betas),
            plan(steps + STEP_UNIT, rates, times, datasets, regularizers, seeds, betas))


def explain(steps: int, chosen: dict, above: dict, rates: dict, times: dict, precision: str, datasets: list[str],
            budget_s: float = BUDGET_S) -> str:
    "The arithmetic in words, one phase per line."
    def minutes(s): return f"{s / 60:.1f} min"
    def phase(name, p, what):
        return (f"  {name}: {what}: trainings {p['train_s']:.0f} s + evaluations {p['evaluate_s']:.0f} s"
                + (f" + report {p['report_s']:.0f} s" if p["report_s"] else "")
                + f" = W {p['work_s']:.0f} s of work; longest chain L {p['longest_chain_s']:.0f} s; "
                  f"W/2 + L/2 = {p['bound_s']:.0f} s ({minutes(p['bound_s'])})")
    lines = [f"rates at 1 thread, {precision} ({RATES}): "
             + ", ".join(f"{LABELS[r]} {v:.2f} steps/s ({src})" for r, (v, src) in rates.items()),
             f"stage costs ({TIMES}): a step inside a train stage costs {times['in_stage_factor']:.2f}× the "
             f"benchmark's; " + "; ".join(
                 f"{d}: a step takes {times['per_step_factor'][d]:.2f}× dSprites', training's fixed cost "
                 f"{times['train_fixed_s'][d]:.0f} s, evaluation {times['evaluate_s'][d]:.0f} s" for d in datasets)
             + f"; report {times['report_s']:.0f} s",
             f"steps = {steps} (the most, in multiples of {STEP_UNIT}, within {budget_s:.0f} s = {minutes(budget_s)}, "
             f"{JOBS} single-thread stages at a time):",
             phase("pilot", chosen["pilot"], f"{chosen['pilot']['trainings']} base-model trainings and evaluations"),
             phase("study", chosen["study"], f"{chosen['study']['trainings']} trainings and evaluations, the report"),
             f"  total {chosen['total_s']:.0f} s ({minutes(chosen['total_s'])}) ≤ {budget_s:.0f} s; "
             f"{above['steps']} steps would take {above['total_s']:.0f} s ({minutes(above['total_s'])})"]
    return "\n".join(lines)


def sizing(root: Path = ROOT, budget_s: float = BUDGET_S) -> tuple[int, str]:
    "(steps, the arithmetic) for the committed rates, stage times and study/params.yaml."
    from gmg.params import STUDY_BETAS
    study = read_study(root)
    precision = profile_file(study, "train", root).get("precision", "float32")
    rates = training_rates(json.loads((root / RATES).read_text()), precision)
    times = json.loads((root / TIMES).read_text())
    missing = [d for d in study["datasets"] if d not in times["evaluate_s"]]
    if missing:
        raise ValueError(f"{TIMES}: no measured stage times for {', '.join(missing)}: run python tools/study_sizing.py measure")
    steps, chosen, above = size(rates, times, study["datasets"], study["regularizers"], len(study["seeds"]),
                                len(STUDY_BETAS), budget_s)
    text = explain(steps, chosen, above, rates, times, precision, study["datasets"], budget_s)
    if times["in_stage_factor"] != 1:
        alone = size(rates, {**times, "in_stage_factor": 1.0}, study["datasets"], study["regularizers"],
                     len(study["seeds"]), len(STUDY_BETAS), budget_s)[0]
        text += f"\n(at the benchmark's rates alone, k = 1, it would be {alone} steps)"
    return steps, text


# ---------------------------------------------------------------------------------------------- measuring

def timed(args: list[str], cwd: Path) -> dict:
    """Run `args` to completion: wall and CPU seconds (user + system of the process and every descendant it waited
    for: papermill's kernel included). CPU time is the measure: it barely depends on what else the machine runs."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg"))
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def fresh(folder: Path) -> Path:
    "`folder`, emptied."
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def measure(workdir: Path, root: Path = ROOT) -> dict:
    """Time the study profile's stages as the stages run them (papermill, the study profile's files, one thread):
    per dataset, the base model's train stage at the two MEASURE_STEPS (a line through the two: its slope is the
    per-step cost, its intercept the fixed cost), one evaluation of the longer run's checkpoint, and the report (on
    the synthetic set of 36 evaluated runs it writes when given none: no traversal figures). Writes TIMES."""
    load_before = os.getloadavg()
    study = read_study(root)
    cache = root / "results" / "cache" / "datasets"
    if not all((cache / f"{d}-v1.npz").is_file() for d in study["datasets"]):
        from gmg.datasets import load
        cache = workdir / "cache"
        for d in study["datasets"]:
            load(d, cache_dir=cache).build_cache()
    train_nb, evaluate_nb = root / "nbs/experiments/train.ipynb", root / "nbs/experiments/evaluate.ipynb"
    profile = root / "profiles" / study["profile"]
    out = {"per_step_cpu_s": {}, "train_fixed_s": {}, "evaluate_s": {}, "raw": {}}
    for dataset in study["datasets"]:
        runs = {}
        for steps in MEASURE_STEPS:
            run = fresh(workdir / f"{dataset}-{steps}")   # a fresh folder: a training there would resume
            runs[steps] = timed(["papermill", "--no-progress-bar", str(train_nb), str(run / "train.ipynb"),
                                 "-f", str(profile / "train.yaml"), "-p", "out_dir", str(run), "-p", "dataset", dataset,
                                 "-p", "cache_dir", str(cache), "-p", "regularizer", "none", "-p", "lam", "0.0",
                                 "-p", "beta", "1.0", "-p", "steps", str(steps), "-p", "seed", "1000",
                                 "-p", "checkpoint_every", str(steps)], root)
        short, long = MEASURE_STEPS
        per_step = (runs[long]["cpu_s"] - runs[short]["cpu_s"]) / (long - short)
        fresh(workdir / f"{dataset}-eval")
        evaluation = timed(["papermill", "--no-progress-bar", str(evaluate_nb), str(workdir / f"{dataset}-eval.ipynb"),
                            "-f", str(profile / "evaluate.yaml"), "-p", "run_dir", str(workdir / f"{dataset}-{long}"),
                            "-p", "out_dir", str(workdir / f"{dataset}-eval"), "-p", "seed", "0"], root)
        out["per_step_cpu_s"][dataset] = per_step
        out["train_fixed_s"][dataset] = runs[short]["cpu_s"] - short * per_step   # the line's intercept
        out["evaluate_s"][dataset] = evaluation["cpu_s"]
        out["raw"][dataset] = {f"train_{s}_steps": r for s, r in runs.items()} | {"evaluate": evaluation}
    reference = out["per_step_cpu_s"].get("dsprites", next(iter(out["per_step_cpu_s"].values())))
    out["per_step_factor"] = {d: v / reference for d, v in out["per_step_cpu_s"].items()}
    bench = json.loads((root / RATES).read_text())
    out["in_stage_factor"] = reference * training_rates(bench, "float32")["none"][0]   # reference: dSprites' step
    fresh(workdir / "report")
    report = timed(["papermill", "--no-progress-bar", str(root / "nbs/experiments/report.ipynb"),
                    str(workdir / "report.ipynb"), "-p", "out_dir", str(workdir / "report"),
                    "-p", "n_boot", str(study["report"]["n_boot"])], root)
    out["report_s"] = report["cpu_s"]
    out["raw"]["report"] = report
    evaluate_profile = yaml.safe_load((profile / "evaluate.yaml").read_text())
    import platform, torch
    result = {"what": "CPU seconds of the study profile's stages, measured by `python tools/study_sizing.py measure` "
                      "(papermill, as the stages run them; one torch thread; niceness and load average below): a training's "
                      "fixed cost (kernel start, data, checkpoint, figures), a β-VAE step's cost relative to the "
                      "benchmark's (in_stage_factor, on dSprites) and a dataset's relative to dSprites', an "
                      "evaluation of a briefly trained base model, the report",
              "profile": study["profile"], "evaluate_sizes": {k: evaluate_profile[k] for k in
                                                              ("metrics", "size_fraction", "min_size", "n_jobs", "threads")},
              "measure_steps": list(MEASURE_STEPS), "in_stage_factor": out["in_stage_factor"],
              "per_step_factor": out["per_step_factor"], "train_fixed_s": out["train_fixed_s"],
              "evaluate_s": out["evaluate_s"], "report_s": out["report_s"], "per_step_cpu_s": out["per_step_cpu_s"],
              "raw": out["raw"], "niceness": os.nice(0), "load_average_before": list(load_before), "device": platform.machine(),
              "torch": torch.__version__}
    (root / TIMES).parent.mkdir(parents=True, exist_ok=True)
    (root / TIMES).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["size", "measure"], default="size")
    parser.add_argument("--write", action="store_true", help="write the steps into study/params.yaml")
    parser.add_argument("--budget-hours", type=float, default=BUDGET_S / 3600)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gmg-study-measure"))
    args = parser.parse_args(argv)
    if args.command == "measure":
        args.workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps({k: v for k, v in measure(args.workdir).items() if k != "raw"}, indent=2, ensure_ascii=False))
        return 0
    try:
        steps, text = sizing(budget_s=args.budget_hours * 3600)
    except (ValueError, FileNotFoundError) as e:
        print(f"study_sizing: {e}", file=sys.stderr)
        return 2
    print(text)
    if args.write:
        set_study_value("steps", steps)
        print(f"{STUDY}: study.steps = {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

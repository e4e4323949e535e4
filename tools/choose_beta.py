"""β of the study's base model, chosen on a pilot seed by a rule fixed before any pilot ran.

    python tools/choose_beta.py run [--jobs 2] [--workdir /tmp/gmg-study-pilot]   # pilot runs (resume), then collect
    python tools/choose_beta.py collect   # results/study/pilot/ from the finished pilot runs; β into study/params.yaml
    python tools/choose_beta.py table     # results/study/pilot/beta.md from pilot_runs.json
    python tools/choose_beta.py check     # exit 1 unless study/params.yaml's β is what the committed pilot's rule gives

The rule (written before the pilot ran, and not to be changed after it):
- Candidates: β ∈ STUDY_BETAS = {1, 2, 4, 6, 8, 16} (`gmg.params`: the β-VAE grid of this line of work); the study's
  `gmg.params check --study` refuses any other β.
- Runs: the base model alone (the study's model, regularizer none: the choice cannot favour a regularizer) on every
  dataset of the study, with PILOT_SEED = 1000 (a pilot seed: `gmg.params` refuses seeds ≥ 1000 among the study's),
  the study's steps and training settings (study/params.yaml, profiles/<study.profile>/train.yaml) and the study's
  evaluation (nbs/experiments/evaluate.ipynb with profiles/<study.profile>/evaluate.yaml and study.evaluate_seed).
- Choice: the β with the highest mean DCI-D (`dci_disentanglement`) over the datasets; every β within TIE = 0.01 of
  that mean counts as tied, and the smallest of them is chosen (the weaker bottleneck: no more pressure on the
  reconstruction than the data supports).
- The chosen β is written into study/params.yaml (study.beta) only when every pilot run has finished; until then
  study.beta stays null and the study's stages refuse to run. The pilot's numbers choose β and nothing else: they
  are never reported as study results (seed 1000 is not a study seed; the study's report reads results/study/eval).
Pilot runs live in `--workdir` (not committed; a rerun resumes or skips finished runs); the committed result is
results/study/pilot/pilot_runs.json (every pilot run's scores and the settings they ran with) and beta.md.
`check` also fails when the pilot ran with other settings than the study's now (e.g. the steps were sized again).
"""
from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import calibrate_lambda   # noqa: E402
from calibrate_lambda import PILOT_SEED, train_one   # noqa: E402  (the λ calibration's pilot seed and runner)
from study_sizing import STUDY, profile_file, read_study, set_study_value   # noqa: E402

from gmg.params import STUDY_BETAS, ParamsError, check_study   # noqa: E402

TIE = 0.01
SCORE = "dci_disentanglement"
PILOT = Path("results/study/pilot")


def settings(root: Path = ROOT) -> tuple[dict, dict, list[str]]:
    """(TrainConfig fields every pilot run shares, the evaluation's settings, the datasets), from the study's files,
    after `gmg.params` has checked them (β may still be unchosen)."""
    try:
        check_study(root / STUDY, root / "params.yaml", require_beta=False)
    except ParamsError as e:
        raise SystemExit(f"choose_beta: {e}")
    study = read_study(root)
    fields = dict(profile_file(study, "train", root))
    fields.update({k: study[k] for k in ("model", "source", "target", "cost", "eps0")})
    fields.update(steps=study["steps"], regularizer="none", lam=0.0, hfs_gamma=0.0, seed=PILOT_SEED)
    evaluation = {"profile": study["profile"], "seed": study["evaluate_seed"], **profile_file(study, "evaluate", root)}
    return fields, evaluation, list(study["datasets"])


def run_dir(workdir: Path, beta: float, dataset: str) -> Path:
    return workdir / f"beta{beta:g}-{dataset}"


def evaluate_one(folder: Path, evaluation: dict, root: Path = ROOT) -> dict:
    "Score a finished pilot run as the study's evaluate stage does (papermill, the profile's sizes); its metrics."
    metrics = folder / "eval" / "metrics.json"
    if metrics.is_file():
        return json.loads(metrics.read_text())
    proc = subprocess.run(["papermill", "--no-progress-bar", str(root / "nbs/experiments/evaluate.ipynb"),
                           str(folder / "evaluate.ipynb"), "-f", str(root / "profiles" / evaluation["profile"] / "evaluate.yaml"),
                           "-p", "run_dir", str(folder), "-p", "out_dir", str(folder / "eval"),
                           "-p", "seed", str(evaluation["seed"])], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pilot evaluation {folder.name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(metrics.read_text())


def pilot_one(folder: Path, fields: dict, evaluation: dict, root: Path = ROOT) -> dict:
    "Train (or resume, or skip) and evaluate one pilot run."
    train_one(folder, fields)
    return evaluate_one(folder, evaluation, root)


def run(workdir: Path, jobs: int, root: Path = ROOT) -> None:
    fields, evaluation, datasets = settings(root)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {(b, d): pool.submit(pilot_one, run_dir(workdir, b, d), {**fields, "beta": b, "dataset": d},
                                       evaluation, root) for b in STUDY_BETAS for d in datasets}
        for (b, d), f in futures.items():
            print(f"β = {b:g}, {d}: DCI-D {f.result()[SCORE]:.3f}", flush=True)
    collect(workdir, root)


def _finished(folder: Path) -> dict | None:
    "The evaluation's metrics of a pilot run whose training finished, else None."
    train, scores = folder / "metrics.json", folder / "eval" / "metrics.json"
    if train.is_file() and json.loads(train.read_text()).get("finished") and scores.is_file():
        return json.loads(scores.read_text())
    return None


def chosen(rows: list[dict]) -> float | None:
    "The rule's β: highest mean DCI-D over the datasets, ties within TIE to the smallest β; None without rows."
    datasets = {r["dataset"] for r in rows}
    means = {}
    for beta in sorted({r["beta"] for r in rows}):
        scores = [r[SCORE] for r in rows if r["beta"] == beta]
        if len(scores) == len(datasets):   # a β scored on every dataset
            means[beta] = sum(scores) / len(scores)
    if not means:
        return None
    best = max(means.values())
    return min(b for b, m in means.items() if m >= best - TIE)


def collect(workdir: Path, root: Path = ROOT) -> dict:
    """The finished pilot runs in `workdir` (no training): pilot_runs.json, beta.md, and the chosen β written into
    study/params.yaml when every run has finished."""
    fields, evaluation, datasets = settings(root)
    rows = []
    for beta in STUDY_BETAS:
        for dataset in datasets:
            scores = _finished(run_dir(workdir, beta, dataset))
            if scores is not None:
                rows.append({"beta": beta, "dataset": dataset, SCORE: scores[SCORE],
                             **{k: scores[k] for k in ("dci_completeness", "dci_informativeness", "mig") if k in scores}})
    complete = len(rows) == len(STUDY_BETAS) * len(datasets)
    data = {"rule": "the β with the highest mean DCI-D over the datasets; ties within 0.01: the smallest β "
                    "(tools/choose_beta.py)", "score": SCORE, "tie": TIE, "betas": list(STUDY_BETAS),
            "pilot_seed": PILOT_SEED, "datasets": datasets, "settings": fields, "evaluation": evaluation,
            "complete": complete, "rows": rows}
    out = root / PILOT
    out.mkdir(parents=True, exist_ok=True)
    (out / "pilot_runs.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    table(root)
    if complete:
        set_study_value("beta", chosen(rows), root)
        print(f"{STUDY}: study.beta = {chosen(rows):g}")
    else:
        print(f"{len(rows)} of {len(STUDY_BETAS) * len(datasets)} pilot runs finished: study.beta left as it is")
    return data


def table(root: Path = ROOT) -> str:
    import pandas as pd
    data = json.loads((root / PILOT / "pilot_runs.json").read_text())
    pick = chosen(data["rows"]) if data["complete"] else None
    frame = pd.DataFrame(data["rows"])
    lines = [f"# β of the study's base model (pilot seed {data['pilot_seed']}; never reported as a study result)", "",
             f"Generated by `python tools/choose_beta.py table` from `pilot_runs.json`; the rule is in the tool's "
             f"docstring: {data['rule']}. Settings: {data['settings']['model']}, {data['settings']['steps']} steps, "
             f"batch {data['settings']['batch_size']}, lr {data['settings']['lr']}, precision "
             f"{data['settings'].get('precision', 'float32')}; evaluation at the `{data['evaluation']['profile']}` "
             f"profile's sizes (size fraction {data['evaluation']['size_fraction']}).", ""]
    if frame.empty:
        lines.append("No pilot run has finished.")
    else:
        wide = frame.pivot_table(index="beta", columns="dataset", values=data["score"]).reset_index()
        wide["mean DCI-D"] = wide[data["datasets"]].mean(axis=1) if set(data["datasets"]) <= set(wide) else float("nan")
        wide["chosen"] = ["**yes**" if b == pick else "" for b in wide.beta]
        wide.insert(0, "β", [f"{b:g}" for b in wide.pop("beta")])
        lines += [wide.to_markdown(index=False, floatfmt=".3f"), "",
                  f"Chosen: β = {pick:g}" if pick is not None else
                  f"Not chosen yet: {len(frame)} of {len(data['betas']) * len(data['datasets'])} pilot runs finished."]
    text = "\n".join(lines) + "\n"
    (root / PILOT / "beta.md").write_text(text)
    print(text)
    return text


def check(root: Path = ROOT) -> int:
    "0 when study/params.yaml's β is the committed pilot's choice (or null while no complete pilot exists), else 1."
    beta = read_study(root)["beta"]
    path = root / PILOT / "pilot_runs.json"
    if not path.is_file():
        if beta is None:
            print(f"no pilot yet ({PILOT}/pilot_runs.json): study.beta is null, and the study's stages refuse to run")
            return 0
        print(f"study.beta = {beta} but there is no pilot ({PILOT}/pilot_runs.json): β is chosen by "
              f"`python tools/choose_beta.py run`, not by hand", file=sys.stderr)
        return 1
    data = json.loads(path.read_text())
    pick = chosen(data["rows"]) if data["complete"] else None
    if beta != pick:
        print(f"study/params.yaml study.beta = {beta} differs from the pilot's choice {pick} ({PILOT}/pilot_runs.json"
              + ("" if data["complete"] else ", incomplete: β stays null until every pilot run has finished") + ")",
              file=sys.stderr)
        return 1
    fields, evaluation, datasets = settings(root)
    changed = sorted(k for k in set(fields) | set(data["settings"]) if fields.get(k) != data["settings"].get(k))
    changed += sorted(k for k in set(evaluation) | set(data["evaluation"])
                      if evaluation.get(k) != data["evaluation"].get(k))
    if datasets != data["datasets"]:
        changed.append("datasets")
    if changed:
        print(f"the pilot ran with other settings than the study's now ({', '.join(changed)}): run the pilot again "
              f"(`python tools/choose_beta.py run`)", file=sys.stderr)
        return 1
    print(f"study.beta is the pilot's choice: " + (f"β = {pick:g}" if pick is not None else "none yet (null)"))
    return 0


def main(argv=None) -> int:
    return calibrate_lambda.pilot_command_line(argv, __doc__, Path("/tmp/gmg-study-pilot"), run, collect, table, check)


if __name__ == "__main__":
    sys.exit(main())

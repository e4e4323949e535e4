"""The study of issue 21 (`study/dvc.yaml`, `tools/study_sizing.py`, `tools/choose_beta.py`, `nbs/18_study.ipynb`).

Quick tests first: the sizing's arithmetic on made-up rates and stage times, the writer that edits
study/params.yaml, the β rule, the pilot's collect/check on fake finished runs, and the committed files agreeing
with the tools (the steps are the sizing's, β is what the committed pilot gives).

Then one end-to-end check in a throw-away copy of the repository (tests/test_pipeline.py's micro copy): the study
shrunk to one dataset, two seeds, a few steps and the micro profile's sizes; the β pilot at that size
(`tools/choose_beta.py run`) writes β; `dvc repro study/dvc.yaml` runs the study; a second one finds nothing to do;
`dvc repro` at the root runs the root pipeline and leaves results/study/ and study/dvc.lock as they were; the
design notebook shows the study's results, and the README block shows them too. The work is bounded by size, never
by a clock (the subprocess timeout is test_pipeline's safety net against a hung process).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_pipeline import ROOT, _env, _merge, _sh, micro_copy

sys.path.insert(0, str(ROOT / "tools"))
import choose_beta  # noqa: E402
import study_sizing as sizing  # noqa: E402

from gmg.params import STUDY_BETAS  # noqa: E402

# ---------------------------------------------------------------------------------------------- the sizing

RATES = {"none": (10.0, "made up"), "dst": (10.0, "made up"), "gmg": (5.0, "made up")}
TIMES = {"in_stage_factor": 1.0, "per_step_factor": {"a": 1.0, "b": 2.0}, "train_fixed_s": {"a": 10.0, "b": 10.0},
         "evaluate_s": {"a": 20.0, "b": 20.0}, "report_s": 30.0}


def test_sizing_arithmetic_with_made_up_rates():
    """1000 steps, datasets a and b (b's steps twice as long), β-VAE and DST 10 steps/s, GMG 5, 10 s fixed per
    training, 20 s per evaluation, 30 s report; pilot 6 β × 2 datasets, study 2 × 3 regularizers × 6 seeds."""
    plan = sizing.plan(1000, RATES, TIMES, ["a", "b"], ["none", "dst", "gmg"], seeds=6, betas=6)
    pilot, study = plan["pilot"], plan["study"]
    # pilot: trainings 6 × (110 + 210) = 1920 s, evaluations 12 × 20 = 240 s; longest chain 210 + 20 = 230 s
    assert (pilot["trainings"], pilot["train_s"], pilot["evaluate_s"], pilot["longest_chain_s"]) == (12, 1920, 240, 230)
    assert pilot["bound_s"] == pytest.approx(2160 / 2 + 230 / 2)
    # study: per seed a: 110 + 110 + 210, b: 210 + 210 + 410 → 6 × 1260 = 7560 s; 36 evaluations 720 s; report 30 s;
    # longest chain: GMG on b 410 + 20 + the report 30 = 460 s
    assert (study["trainings"], study["train_s"], study["evaluate_s"], study["report_s"]) == (36, 7560, 720, 30)
    assert study["longest_chain_s"] == 460 and study["bound_s"] == pytest.approx(8310 / 2 + 460 / 2)
    assert plan["total_s"] == pytest.approx(1195 + 4385)
    # 4.8 s per step in all (pilot 0.9 + 0.1, study 3.6 + 0.2), 780 s fixed: 1000 steps fit 5580 s exactly
    steps, chosen, above = sizing.size(RATES, TIMES, ["a", "b"], ["none", "dst", "gmg"], 6, 6, budget_s=5580)
    assert steps == 1000 and chosen["total_s"] == pytest.approx(5580) and above["total_s"] == pytest.approx(6780)
    assert sizing.size(RATES, TIMES, ["a", "b"], ["none", "dst", "gmg"], 6, 6, budget_s=5579)[0] == 750
    slower = {**TIMES, "in_stage_factor": 2.0}   # steps twice as dear inside a stage: about half as many
    assert sizing.size(RATES, slower, ["a", "b"], ["none", "dst", "gmg"], 6, 6, budget_s=5580)[0] == 250
    with pytest.raises(ValueError, match="not even 250 steps fit 1000 s"):
        sizing.size(RATES, TIMES, ["a", "b"], ["none", "dst", "gmg"], 6, 6, budget_s=1000)
    text = sizing.explain(steps, chosen, above, RATES, TIMES, "float32", ["a", "b"], 5580)
    assert "steps = 1000" in text and "W/2 + L/2 = 1195 s" in text and "1250 steps would take 6780 s" in text


def test_rates_by_precision():
    "float32 rows as benchmarked; in bfloat16 a missing DST row is DST's float32 time ratio on the bf16 β-VAE rate."
    rows = {"β-VAE": 5.0, "+ DST (decoder, Cos)": 4.0, "+ GMG (decoder, Cos)": 2.5, "β-VAE, bf16 autocast": 8.0,
            "+ GMG (decoder, Cos), bf16 autocast": 4.0}
    bench = {"rows": [{"configuration": k, "steps_per_second": v} for k, v in rows.items()]}
    assert {k: v for k, (v, _) in sizing.training_rates(bench, "float32").items()} == {"none": 5, "dst": 4, "gmg": 2.5}
    bf16 = sizing.training_rates(bench, "bfloat16")
    assert (bf16["none"][0], bf16["gmg"][0]) == (8, 4) and bf16["dst"][0] == pytest.approx(8 / 1.25)
    assert "DST's float32 time relative to the β-VAE (1.250)" in bf16["dst"][1]
    bench["rows"] = [r for r in bench["rows"] if r["configuration"] != "+ GMG (decoder, Cos), bf16 autocast"]
    with pytest.raises(ValueError, match=r"no rate for \+GMG in bfloat16"):
        sizing.training_rates(bench, "bfloat16")


def _study_repository(dest: Path) -> Path:
    "study/, profiles/, params.yaml, tools/ and the train notebook: what the tools read, in a temporary folder."
    for name in ("study", "profiles", "tools"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", dest / "params.yaml")
    (dest / "nbs" / "experiments").mkdir(parents=True)
    shutil.copy(ROOT / "nbs" / "experiments" / "train.ipynb", dest / "nbs" / "experiments" / "train.ipynb")
    return dest


def test_writing_a_value_keeps_every_other_line(tmp_path):
    root = _study_repository(tmp_path)
    before = (root / sizing.STUDY).read_text().splitlines()
    sizing.set_study_value("steps", 1750, root)
    sizing.set_study_value("beta", 6.0, root)
    after = (root / sizing.STUDY).read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(after) == len(before) and len(changed) == 2, changed
    assert changed[0][1].startswith("  beta: 6.0  # ") and changed[1][1].startswith("  steps: 1750  # ")
    assert sizing.read_study(root)["steps"] == 1750 and sizing.read_study(root)["beta"] == 6.0
    with pytest.raises(ValueError, match="expected one line `  nothing: ...`"):
        sizing.set_study_value("nothing", 1, root)


def test_the_committed_steps_are_the_sizings():
    "study/params.yaml's steps are what `python tools/study_sizing.py --write` computes from the committed files."
    steps, text = sizing.sizing()
    assert sizing.read_study()["steps"] == steps, f"run python tools/study_sizing.py --write:\n{text}"

# ---------------------------------------------------------------------------------------------- the β rule


def _rows(means: dict[float, tuple[float, float]]) -> list[dict]:
    return [{"beta": b, "dataset": d, choose_beta.SCORE: v} for b, pair in means.items()
            for d, v in zip(("dsprites", "shapes3d"), pair)]


def test_beta_rule():
    assert choose_beta.chosen(_rows({1.0: (0.1, 0.2), 4.0: (0.3, 0.2), 16.0: (0.2, 0.2)})) == 4.0
    # 6: mean 0.300, 8: 0.305: within TIE of the best, so the smaller β wins; 2 (0.2895) is not within 0.01 of 0.305
    assert choose_beta.chosen(_rows({2.0: (0.279, 0.3), 6.0: (0.3, 0.3), 8.0: (0.31, 0.3)})) == 6.0
    # a β missing a dataset is not a candidate; no rows, no choice
    rows = _rows({1.0: (0.1, 0.1)}) + [{"beta": 2.0, "dataset": "dsprites", choose_beta.SCORE: 0.9}]
    assert choose_beta.chosen(rows) == 1.0 and choose_beta.chosen([]) is None


def _fake_pilot(workdir: Path, datasets: list[str], score) -> None:
    "Finished pilot runs (a finished training, an evaluation) with DCI-D `score(β, dataset)`."
    for beta in STUDY_BETAS:
        for dataset in datasets:
            folder = choose_beta.run_dir(workdir, beta, dataset)
            (folder / "eval").mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps({"finished": True}))
            (folder / "eval" / "metrics.json").write_text(json.dumps({choose_beta.SCORE: score(beta, dataset), "mig": 0.1}))


def test_collect_and_check_on_a_fake_pilot(tmp_path, capsys):
    "collect writes pilot_runs.json, beta.md and β (only once every run finished); check holds the file to them."
    root = _study_repository(tmp_path / "repo")
    sizing.set_study_value("beta", None, root)   # the copy has no pilot results: start where a fresh study starts
    datasets = sizing.read_study(root)["datasets"]
    assert choose_beta.check(root) == 0 and sizing.read_study(root)["beta"] is None   # no pilot: β stays null
    workdir = tmp_path / "pilot"
    _fake_pilot(workdir, datasets[:1], lambda b, d: 0.1 * b)   # one dataset only: incomplete
    data = choose_beta.collect(workdir, root)
    assert not data["complete"] and sizing.read_study(root)["beta"] is None and choose_beta.check(root) == 0
    shutil.rmtree(workdir)
    _fake_pilot(workdir, datasets, lambda b, d: 0.5 - abs(b - 6) / 100 + (0.001 if b == 8 else 0))
    data = choose_beta.collect(workdir, root)   # 6: 0.5, 8: 0.481 → 6
    assert data["complete"] and len(data["rows"]) == 12 and data["settings"]["seed"] == 1000
    assert data["settings"]["regularizer"] == "none" and data["settings"]["steps"] == sizing.read_study(root)["steps"]
    assert sizing.read_study(root)["beta"] == 6.0 and choose_beta.check(root) == 0
    chosen_line = [l for l in (root / choose_beta.PILOT / "beta.md").read_text().splitlines() if "**yes**" in l]
    assert len(chosen_line) == 1 and chosen_line[0].split("|")[1].strip() == "6"
    sizing.set_study_value("beta", 8.0, root)   # by hand
    assert choose_beta.check(root) == 1 and "differs from the pilot's choice 6.0" in capsys.readouterr().err
    sizing.set_study_value("beta", 6.0, root)
    sizing.set_study_value("steps", sizing.read_study(root)["steps"] + 250, root)   # sized again: pilot is stale
    assert choose_beta.check(root) == 1 and "other settings than the study's now (steps)" in capsys.readouterr().err


def test_the_committed_beta_is_the_pilots():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "choose_beta.py"), "check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr

# ---------------------------------------------------------------------------------------------- end to end, micro

MICRO_STUDY = {"profile": "micro", "datasets": ["dsprites"], "seeds": [10, 11], "steps": 6, "report": {"n_boot": 200}}
ROOT_GRID = {"train": {"regularizers": ["none", "gmg"]}}   # the root pipeline's micro grid, smaller still
STUDY_RUNS = [f"dsprites-beta_vae-{r}-{s}" for r in ("none", "dst", "gmg") for s in (10, 11)]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def micro_study(tmp_path_factory):
    repo = tmp_path_factory.mktemp("study") / "gmg"
    env = micro_copy(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, ROOT_GRID), sort_keys=False))
    study = yaml.safe_load((repo / "study" / "params.yaml").read_text())
    study["study"] = _merge(study["study"], {**MICRO_STUDY, "beta": None})
    (repo / "study" / "params.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    out = {"repo": repo, "env": env}
    out["datasets"] = _sh(["dvc", "repro", "datasets"], repo, env)   # the render cache the pilot reads
    out["pilot"] = _sh([sys.executable, "tools/choose_beta.py", "run", "--jobs", "2", "--workdir",
                        str(tmp_path_factory.mktemp("pilot"))], repo, env)
    out["first"] = _sh(["dvc", "repro", "study/dvc.yaml"], repo, env)
    out["second"] = _sh(["dvc", "repro", "study/dvc.yaml"], repo, env)
    out["results_before"], out["lock_before"] = _digest(repo / "results" / "study"), (repo / "study" / "dvc.lock").read_text()
    out["root"] = _sh(["dvc", "repro"], repo, env)
    out["results_after"], out["lock_after"] = _digest(repo / "results" / "study"), (repo / "study" / "dvc.lock").read_text()
    out["status"] = json.loads(_sh(["dvc", "status", "study/dvc.yaml", "--json"], repo, env).stdout)
    return out


def test_micro_pilot_chooses_beta(micro_study):
    repo = micro_study["repo"]
    data = json.loads((repo / "results" / "study" / "pilot" / "pilot_runs.json").read_text())
    assert data["complete"] and len(data["rows"]) == len(STUDY_BETAS) and data["settings"]["steps"] == 6
    beta = yaml.safe_load((repo / "study" / "params.yaml").read_text())["study"]["beta"]
    assert beta == choose_beta.chosen(data["rows"]) and beta in STUDY_BETAS
    check = _sh([sys.executable, "tools/choose_beta.py", "check"], repo, micro_study["env"], check=False)
    assert check.returncode == 0, check.stderr


def test_micro_study_runs_its_own_stages(micro_study):
    repo, first = micro_study["repo"], micro_study["first"]
    ran = {line.split("'")[1] for line in first.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {f"study/dvc.yaml:{s}@dsprites-{r}-{seed}" for s in ("train", "evaluate")
                   for r in ("none", "dst", "gmg") for seed in (10, 11)} | {"study/dvc.yaml:report"}, first.stdout
    lock = yaml.safe_load((repo / "study" / "dvc.lock").read_text())
    missing = [o["path"] for stage in lock["stages"].values() for o in stage.get("outs", []) if not (repo / o["path"]).exists()]
    assert not missing and all(o["path"].startswith("results/study/") for stage in lock["stages"].values()
                               for o in stage.get("outs", []))
    import pandas as pd
    summary = pd.read_csv(repo / "results" / "study" / "summary.csv")
    assert sorted(summary.run) == sorted(STUDY_RUNS) and set(summary.seed) == {10, 11}
    assert (summary.steps == 6).all() and (summary.beta == micro_study_beta(repo)).all()
    assert set(summary.lam) == {0.0, 10000.0, 200000.0}   # the calibrated λs, none for the base model
    verdicts = (repo / "results" / "study" / "report" / "verdicts.md").read_text()
    assert "profile `micro`" in verdicts and "GMG beats DST | **not tested at this profile** | only 2 paired seed(s)" in verdicts


def micro_study_beta(repo: Path) -> float:
    return yaml.safe_load((repo / "study" / "params.yaml").read_text())["study"]["beta"]


def test_second_study_repro_and_root_repro_change_nothing_of_the_study(micro_study):
    assert "Running stage" not in micro_study["second"].stdout, micro_study["second"].stdout
    root = micro_study["root"].stdout
    assert "Running stage 'report'" in root and "study/dvc.yaml" not in root and "results/study" not in root
    assert micro_study["results_after"] == micro_study["results_before"]
    assert micro_study["lock_after"] == micro_study["lock_before"] and micro_study["status"] == {}


def test_design_notebook_and_readme_show_the_results(micro_study):
    "nbs/18_study.ipynb's last section and the README's study_results block read the study's report."
    results = micro_study["repo"] / "results" / "study"
    env = dict(os.environ, GMG_STUDY_RESULTS=str(results))
    run = subprocess.run(["nbdev-test", "nbs/18_study.ipynb", "--do-print"], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    import importlib.util
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    block = tables.study_results(results.parent, {})
    untested = block.split("Not tested at this profile: ")[1].split(".")[0].split("; ")
    assert "| dSprites (β-VAE; seeds 10, 11) |" in block and "GMG beats DST" in untested

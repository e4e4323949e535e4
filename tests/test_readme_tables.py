"""The documentation's result tables are generated from the committed result files, and README.md from the landing
page nbs/index.ipynb (`tools/readme_tables.py`).

The first test is the CI check: the notebooks' generated blocks and the README must be exactly what the tool writes
from `results/` and the index. Then the README as a landing page: its Python runs as written, it stays short. The
others test the tool itself on a small synthetic result set with known numbers: the values it prints, that
`--check` catches a changed digit inside a generated block (in a notebook, and so in the README) and ignores prose
outside the blocks, the Markdown export of a notebook, and that a missing result file is reported by name.
"""
from __future__ import annotations
import importlib.util, json, re, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)

def test_readme_tables_match_the_committed_results(capsys):
    status = tables.main(["--check"])
    assert status == 0, capsys.readouterr().err[-3000:]

README_LINES = 160   # "about 150": the landing page with the study's results in it

def test_readme_is_a_short_landing_page_whose_python_runs(tmp_path):
    """The README's ```python blocks, run as written, one after the other, in a fresh interpreter outside the
    repository (what a reader who pastes them gets), and the README within about 150 lines."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES, f"README.md has {len(readme.splitlines())} lines"
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", readme, re.S | re.M)   # (language, body), in order
    code = "\n".join(body for language, body in blocks if language == "python")
    assert "gmg.gromov_monge_gap" in code and "backward()" in code
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "step 2: model loss" in run.stdout and "Warning" not in run.stderr
    # what the README shows it printing is what it prints: the same words, the same numbers to their last digit
    # (give or take one or two units there: another thread count may round the last digit the other way)
    shown = "\n".join(body for language, body in blocks if not language)
    number = re.compile(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?")
    assert number.sub("#", shown).split() == number.sub("#", run.stdout).split()
    for want, got in zip(number.findall(shown), number.findall(run.stdout)):
        digits = len(want.split("e")[0].split(".")[1])
        scale = 10 ** int(want.split("e")[1]) if "e" in want else 1
        assert abs(float(got) - float(want)) <= 2 * 10 ** -digits * scale, (want, got)

def test_readme_from_a_notebook():
    "Markdown cells with links re-rooted at the repository, code with its printed output, hidden cells left out."
    cell = lambda kind, src, **kw: {"cell_type": kind, "metadata": {}, "source": src, **kw}
    nb = {"cells": [cell("markdown", ["# T\n", "see [`02_gap`](02_gap.ipynb), ![f](../docs/a.png), "
                                      "[w](https://x.org/a.png), [s](#ten-lines)"]),
                    cell("code", ["#| hide\n", "secret = 1"], outputs=[]),
                    cell("code", ["#| eval: false\n", "print(2)"],
                         outputs=[{"output_type": "stream", "name": "stdout", "text": ["2\n"]},
                                  {"output_type": "stream", "name": "stderr", "text": ["noise\n"]}])]}
    out = tables.readme_from_index(json.dumps(nb))
    assert "see [`02_gap`](nbs/02_gap.ipynb), ![f](docs/a.png), [w](https://x.org/a.png), [s](#ten-lines)" in out
    assert "secret" not in out and "#|" not in out and "noise" not in out
    assert out.endswith("```python\nprint(2)\n```\n\n```\n2\n```\n")
    directives = {"# | hide": "", "#|include: false": "", "#| echo: false": "```\n3\n```\n",
                  "#| output: false": "```python\nprint(3)\n```\n"}
    for directive, shown in directives.items():
        nb["cells"][2]["source"] = [directive + "\n", "print(3)"]
        nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["3\n"]}]
        out = tables.readme_from_index(json.dumps(nb))
        assert out.split("[s](#ten-lines)")[1].lstrip("\n") == shown, directive

PARAMS = {"toy": {"costs": "sqeuclidean,cosine", "targets": "square,annulus"}, "report": {"ci": 0.9}}

def synthetic_results(folder: Path) -> Path:
    "summary.csv, differences.csv, headline.json and toy metrics.json with round numbers."
    rows = []
    for dataset, shift in (("dsprites", 0.0), ("shapes3d", 0.5)):
        for method, reg in (("base", "none"), ("GMG (decoder, cosine)", "gmg")):
            for seed, value in enumerate((0.1, 0.2, 0.3)):
                rows.append(dict(run=f"{dataset}-{reg}-{seed}", dataset=dataset, base_model="beta_vae", method=method,
                                 seed=seed, dci_disentanglement=value + shift + (0.05 if reg == "gmg" else 0),
                                 train_steps_per_second=10.0 * (seed + 1), grad_reg_cv=2.0 if reg == "gmg" else None))
    (folder / "report").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)
    pd.DataFrame([dict(dataset=d, base_model="beta_vae", comparison="GMG (decoder, cosine) − base", versus="base",
                       score="dci_disentanglement", seeds=3, mean=0.05, low=-0.0123, high=0.0877)
                  for d in ("dsprites", "shapes3d")]).to_csv(folder / "report" / "differences.csv", index=False)
    (folder / "report" / "headline.json").write_text(json.dumps({"x/y": 0.05, "GMG beats DST/verdict": "reproduced"}))
    (folder / "toy").mkdir()
    scores = {f"{s}_{stat}": v for s in ("fit", "gmg", "dst", "contiguity") for stat, v in (("mean", 0.012345), ("std", 0.00123))}
    (folder / "toy" / "metrics.json").write_text(json.dumps({c: {m: scores for m in ("none", "dst", "gmg")}
                                                              for c in ("sqeuclidean", "cosine")}))
    (folder / "ablation").mkdir()
    pd.DataFrame([dict(eps0=e, dataset="dsprites", seeds=3, dci_d_mean=m, dci_d_sd=0.01, gmg_grad_active=1.0,
                       gmg_grad_cv=cv, dst_grad_cv=0.25) for e, m, cv in ((0.1, 0.06, 0.2), (0.01, 0.05, 1.5))]
                 ).to_csv(folder / "ablation" / "eps0.csv", index=False)
    (folder / "benchmarks").mkdir()
    (folder / "benchmarks" / "grid_speed_cpu.json").write_text(json.dumps({
        "profile": "cpu", "stages": 39, "cpus": 2, "jobs": 2, "grid_threads_per_job": 1, "load_average_before": [0.5, 1.25],
        "runs": [{"runner": "dvc repro (serial)", "seconds": 1800.0, "speedup_vs_serial": 1.0},
                 {"runner": "gmg.grid --jobs 2", "seconds": 1200.0, "speedup_vs_serial": 1.5}],
        "lock_entries_identical": 3, "runs_compared": 18, "max_abs_dci_d_difference": 0.01234}))
    for threads, rate in ((1, 10.0), (2, 12.5)):
        (folder / "benchmarks" / f"train_speed_cpu_{threads}t.json").write_text(json.dumps({
            "device": "x86_64", "batch": 64, "eps0": 0.01, "gw_budget": [20, 30], "pretrain": 200, "timed_steps_per_row": 60,
            "rounds": 6, "torch": "2.13.0", "load_average_before": [1.0, 1.0, 1.0],
            "rows": [{"configuration": "β-VAE", "steps_per_second": rate, "time_vs_base": 1.0},
                     {"configuration": "+ GMG (decoder, Cos)", "steps_per_second": rate / 1.1, "time_vs_base": 1.1},
                     {"configuration": "+ DST (decoder, Cos)", "steps_per_second": rate / 1.05, "time_vs_base": 1.05}]}))
    solve = lambda ms, value, err, rows: {"ms": ms, "value": value, "rel_error": err, "same_rows": rows}
    (folder / "benchmarks" / "gmg_speed_cpu_1t.json").write_text(json.dumps({
        "device": "CPU, 1 thread(s)", "threads": 1, "cost": "cosine", "problem": "dSprites factors -> images",
        "torch": "2.13.0", "pot": "0.9.7", "load_average_before": [0.5, 0.5, 0.5], "eps_rule": "eps0 * spread",
        "budgets": {"training": {"max_iter": 20, "sinkhorn_iter": 30}, "pot_default_caps": [50, 100],
                    "reference": {"max_iter": 1000, "tol": 1e-9, "sinkhorn_iter": 1000, "sinkhorn_tol": 1e-9}},
        "rows": [{"n": 64, "eps0": 0.01, "repeats": 5, "reference_value": 0.013,
                  "gmg_training_f32": solve(20.5, 0.0129, 0.0048, 0.78), "gmg_default_f64": solve(120.0, 0.0131, 0.0087, 0.8),
                  "pot_default_budget_f64": solve(540.0, 0.0095, 0.27, 0.31), "pot_f64": solve(3500.0, None, None, None)},
                 {"n": 1024, "eps0": 0.1, "repeats": 3, "reference_value": None,
                  "gmg_training_f32": solve(900.0, 0.001, None, None), "gmg_default_f64": solve(2000.0, 0.001, None, None)}]}))
    (folder / "calibration").mkdir()
    rows = [dict(regularizer="gmg", lam=lam, dataset=d, reg_share_mean=s, rec_final=1.0, round_share=s)
            for lam, s in ((1e5, 0.15), (2e5, 0.5)) for d in ("dsprites", "shapes3d")]
    (folder / "calibration" / "pilot_runs.json").write_text(json.dumps({
        "target_share": 0.3, "pilot_seed": 1000, "settings": {"steps": 300}, "complete": {"gmg": True}, "rows": rows}))
    (folder / "study").mkdir()   # the study's measured stage times (tools/study_sizing.py measure); not run yet
    (folder / "study" / "stage_times_cpu_1t.json").write_text(json.dumps({
        "in_stage_factor": 1.0, "per_step_factor": {"dsprites": 1.0, "shapes3d": 1.0},
        "train_fixed_s": {"dsprites": 10.0, "shapes3d": 10.0}, "evaluate_s": {"dsprites": 20.0, "shapes3d": 20.0},
        "report_s": 30.0}))
    return folder

README = "Intro 1.23.\n\n" + "\n".join(f"<!-- generated:{n} -->\nstale 9.99\n<!-- /generated:{n} -->\n" for n in tables.TABLES)

def test_values_of_a_known_result_set(tmp_path):
    out = tables.render(README, synthetic_results(tmp_path), PARAMS)
    assert "| dSprites (β-VAE; seeds 0, 1, 2) | 0.200 ± 0.100 | 0.250 ± 0.100 | +0.050 [−0.012, +0.088] |" in out
    assert "GMG (decoder, cosine) − base [90% CI]" in out and "| Shapes3D (β-VAE; seeds 0, 1, 2) | 0.700 ± 0.100 |" in out
    assert "| dSprites | 0.1 | 3 | 0.060 ± 0.010 | 1.00 | 0.20 | 0.25 |" in out   # the ε0 ablation
    assert "| GMG beats DST | **reproduced** |" in out and "x/y" not in out  # verdicts only
    assert "At 3 seeds per cell (paired t-tests, Holm's correction): of the 1 claim tested, 1 reproduced, " \
           "0 contradicted and 0 inconclusive.\n" in out
    assert "| GMG (decoder, cosine) | `grad_reg_cv` | 2.00 | 2.00 |" in out
    assert "| L2² → square | +GMG | 0.0123 ± 0.0012 |" in out and "| Cos → annulus | none |" in out
    assert "| 64 | 0.01 | 20.5 ms · 0.48% | 120 ms · 0.87% | 540 ms · 27% | 4.5× | 3500 ms · no plan | 0.80 / — | 0.013 |" in out
    assert "| 1024 | 0.1 | 900 ms | 2000 ms | — | — | — | — / — | — |" in out
    assert "| gmg.grid --jobs 2 | 20.0 min (1200 s) | 1.50× |" in out and "largest DCI-D difference between the two runs: 0.0123" in out
    assert "stale 9.99" not in out and out.startswith("Intro 1.23.\n") and tables.render(out, tmp_path, PARAMS) == out

def test_differences_written_by_gmg_stats(tmp_path):
    "The report's current differences.csv: Student-t columns, GMG − GMG rows (verdicts only), a single-seed row."
    results = synthetic_results(tmp_path)
    new = pd.DataFrame([dict(dataset=d, base_model="beta_vae", comparison="GMG (decoder, cosine) − base", versus="base",
                             score="dci_disentanglement", seeds=3, mean=0.05, sd=0.05, t_low=-0.0742, t_high=0.1742,
                             bca_low=None, bca_high=None, p_t=0.25, p_sign=0.25, p_perm=0.25, claim="c", direction=1,
                             family="claims", p_holm=0.5, verdict="inconclusive", mde=0.3)
                        for d in ("dsprites", "shapes3d")]
                       + [dict(dataset="dsprites", base_model="beta_vae", versus="target encoder", score="dci_disentanglement",
                               comparison="GMG (decoder, cosine) − GMG (encoder, cosine)", seeds=3, mean=0.01, t_low=-0.1,
                               t_high=0.12)])
    new.loc[1, ["t_low", "t_high"]] = None   # one seed: no interval, the mean alone
    new.to_csv(results / "report" / "differences.csv", index=False)
    out = tables.render(README, results, PARAMS)
    assert "GMG (decoder, cosine) − base [90% t-interval] |" in out and "encoder" not in out
    assert "| dSprites (β-VAE; seeds 0, 1, 2) | 0.200 ± 0.100 | 0.250 ± 0.100 | +0.050 [−0.074, +0.174] |" in out
    assert "| Shapes3D (β-VAE; seeds 0, 1, 2) | 0.700 ± 0.100 | 0.750 ± 0.100 | +0.050 |" in out

def synthetic_repository(root: Path) -> Path:
    "nbs/index.ipynb holding every generated block in one Markdown cell, an empty README.md."
    (root / "nbs").mkdir(parents=True)
    cell = {"cell_type": "markdown", "id": "a", "metadata": {}, "source": README.splitlines(keepends=True)}
    (root / "nbs" / "index.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                           "nbformat_minor": 5}, indent=1) + "\n")
    (root / "README.md").write_text("")
    return root

def test_check_catches_a_changed_number_and_the_readme_follows_the_index(tmp_path):
    results = synthetic_results(tmp_path / "results")
    (tmp_path / "params.yaml").write_text(json.dumps(PARAMS))   # JSON is YAML
    repo = synthetic_repository(tmp_path / "repo")
    index, readme = repo / "nbs" / "index.ipynb", repo / "README.md"
    args = ["--root", str(repo), "--results", str(results), "--params", str(tmp_path / "params.yaml")]
    before = index.read_text()
    assert tables.main(["--check", *args]) == 1 and index.read_text() == before   # --check writes nothing
    assert readme.read_text() == ""
    assert tables.main(args) == 0 and tables.main(["--check", *args]) == 0
    assert "| Shapes3D (β-VAE; seeds 0, 1, 2) | 0.700 ± 0.100 |" in readme.read_text()
    generated = index.read_text()
    index.write_text(generated.replace("Intro 1.23.", "Intro 4.56."))
    assert tables.main(["--check", *args]) == 1                                     # the README follows the index
    assert tables.main(args) == 0 and "Intro 4.56." in readme.read_text()
    index.write_text(index.read_text().replace("0.700 ± 0.100", "0.701 ± 0.100"))
    assert tables.main(["--check", *args]) == 1
    assert tables.main(args) == 0 and "0.701" not in index.read_text() + readme.read_text()   # numbers come back
    readme.write_text(readme.read_text().replace("Intro 4.56.", "Intro 7.89."))
    assert tables.main(["--check", *args]) == 1                                     # a hand-edited README

def test_missing_result_file_and_unknown_block(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(json.dumps(PARAMS))
    repo = synthetic_repository(tmp_path / "repo")
    args = ["--root", str(repo), "--results", str(tmp_path / "none"), "--params", str(tmp_path / "params.yaml")]
    assert tables.main(["--check", *args]) == 2
    assert "summary.csv: missing (run `dvc repro`" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown generated block 'speed'"):
        tables.render("<!-- generated:speed -->\n<!-- /generated:speed -->\n", tmp_path, PARAMS)

# ------------------------------------------------------------------ the study's blocks

def synthetic_study(root: Path, beta=None) -> Path:
    "study/params.yaml and profiles/study/ in `root`: the repository's, with round numbers and β = `beta`."
    import shutil, yaml
    (root / "study").mkdir(parents=True)
    for profile in ("study", "paper"):
        shutil.copytree(ROOT / "profiles" / profile, root / "profiles" / profile)
    study = yaml.safe_load((ROOT / "study" / "params.yaml").read_text())
    study["study"].update(beta=beta, steps=1000, seeds=[10, 11, 12, 13, 14, 15], lam={"dst": 10000.0, "gmg": 200000.0})
    (root / "study" / "params.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    # the rates the study was sized with (study/design_inputs/, frozen at design time): 10 steps/s
    (root / "study" / "design_inputs").mkdir()
    (root / "study" / "design_inputs" / "train_speed_cpu_1t.json").write_text(json.dumps({"rows": [
        {"configuration": "β-VAE", "steps_per_second": 10.0, "time_vs_base": 1.0},
        {"configuration": "+ GMG (decoder, Cos)", "steps_per_second": 10.0 / 1.1, "time_vs_base": 1.1},
        {"configuration": "+ DST (decoder, Cos)", "steps_per_second": 10.0 / 1.05, "time_vs_base": 1.05}]}))
    return root

def test_study_design_and_not_run_yet(tmp_path, monkeypatch):
    """The design block: every value from study/params.yaml and its profile, and the sizing at its steps from the
    stage times and rates (trainings: 1000 steps at 10 steps/s, ÷1.1 for GMG, ÷1.05 for DST, plus 10 s; an evaluation
    20 s; the report 30 s)."""
    monkeypatch.setattr(tables, "STUDY_ROOT", synthetic_study(tmp_path / "repo"))
    out = tables.render(README, synthetic_results(tmp_path / "results"), PARAMS)
    assert "| base model, β | β-VAE, β = not chosen yet (`python tools/choose_beta.py run`: the pilot, seed 1000) |" in out
    assert "| seeds | 10, 11, 12, 13, 14, 15 (6, fresh) |" in out and "| precision | float32 |" in out
    assert "| regularizers (λ) | base, DST (decoder, Cos; λ = 10000), GMG (decoder, Cos; λ = 200000) |" in out
    # pilot: 12 × 110 s + 12 × 20 s = 1560 s of work, longest chain 130 s → 845 s = 14 min; study: 12 × 110 +
    # 12 × 115 + 12 × 120 + 36 × 20 + 30 = 4890 s, longest 120 + 20 + 30 = 170 → 2530 s = 42 min; 56 min in all
    assert "the β pilot (12 base-model runs) takes at most 14 min and the study (36 runs and the report) 42 min, " \
           "56 min of the 150 min budget" in out
    assert "The study has not run yet: `python -m gmg.grid study/dvc.yaml --jobs 2 --profile study`" in out
    monkeypatch.setattr(tables, "STUDY_ROOT", synthetic_study(tmp_path / "chosen", beta=4.0))
    out = tables.render(README, tmp_path / "results", PARAMS)
    assert "| base model, β | β-VAE, β = 4 (chosen on pilot seed 1000: `results/study/pilot/beta.md`) |" in out

def test_study_results_once_it_has_run(tmp_path, monkeypatch):
    "With results/study/ holding a report, the block shows its DCI-D table and verdicts, naming the study's files."
    monkeypatch.setattr(tables, "STUDY_ROOT", synthetic_study(tmp_path / "repo", beta=4.0))
    results = synthetic_results(tmp_path / "results")
    study = results / "study"
    (study / "report").mkdir()
    (results / "summary.csv").rename(study / "summary.csv")
    (results / "report" / "differences.csv").rename(study / "report" / "differences.csv")
    (study / "report" / "headline.json").write_text(json.dumps({"GMG beats DST/verdict": "inconclusive"}))
    out = tables.study_results(results, PARAMS)
    assert "| dSprites (β-VAE; seeds 0, 1, 2) | 0.200 ± 0.100 | 0.250 ± 0.100 | +0.050 [−0.012, +0.088] |" in out
    assert "[95% CI]" in out   # the study's own level (study.report.ci), not params.yaml's
    assert "Verdicts (paired t-tests, Holm's correction): GMG beats DST: **inconclusive**. Of the 1 claim tested, " \
           "0 reproduced, 0 contradicted and 1 inconclusive." in out and "results/study/report/verdicts.md" in out
    assert "`results/study/summary.csv`, `results/study/report/differences.csv`" in out and "not run yet" not in out

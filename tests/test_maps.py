"""gmg.maps and the `toy` DVC stage: a short fit lowers the fitting loss, the GMG regularizer lowers the final GMG
of the map, the stage's notebook runs end to end on tiny parameters and writes every declared output, and the stage
in dvc.yaml passes every parameter of params.yaml's `toy:` section to the notebook."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gmg import maps as M

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "nbs" / "experiments" / "toy_maps.ipynb"


def test_short_fit_lowers_the_fitting_loss():
    mix = M.gaussian_mixture(5, seed=1)
    cfg = M.FitConfig(cost="sqeuclidean", regularizer="none", steps=60, batch_size=64, lr=1e-2, log_every=20, seed=1)
    run = M.fit_map(mix, "square", cfg)
    before = M.evaluate_map(M.make_map(seed=1), mix, "square", cost="sqeuclidean", n_eval=256, batch_size=64, seed=7)
    after = M.evaluate_map(run.model, mix, "square", cost="sqeuclidean", n_eval=256, batch_size=64, seed=7)
    assert run.history[-1]["fit"] < 0.5 * run.history[0]["fit"]
    assert after["fit"] < 0.5 * before["fit"], (before, after)


@pytest.mark.parametrize("cost,target", [("sqeuclidean", "square"), ("cosine", "annulus")])
def test_gmg_regularizer_lowers_the_final_gap(cost, target):
    mix = M.gaussian_mixture(5, seed=0)
    base = dict(cost=cost, steps=80, batch_size=64, lr=1e-2, eps0=0.01, gw_iter=10, log_every=40, seed=0)
    plain = M.fit_map(mix, target, M.FitConfig(regularizer="none", lam=0.0, **base))
    regular = M.fit_map(mix, target, M.FitConfig(regularizer="gmg", lam=10.0, **base))
    scores = [M.evaluate_map(r.model, mix, target, cost=cost, n_eval=256, batch_size=64, seed=3)["gmg"]
              for r in (plain, regular)]
    assert scores[1] < scores[0], scores


def test_fit_is_deterministic_and_seed_dependent():
    mix = M.gaussian_mixture(5, seed=0)
    cfg = M.FitConfig(regularizer="gmg", steps=5, batch_size=32, log_every=1)
    assert M.fit_map(mix, "square", cfg).history == M.fit_map(mix, "square", cfg).history
    other = M.FitConfig(regularizer="gmg", steps=5, batch_size=32, log_every=1, seed=1)
    assert M.fit_map(mix, "square", cfg).history != M.fit_map(mix, "square", other).history


def test_stage_runs_end_to_end_on_tiny_parameters(tmp_path):
    out = tmp_path / "toy"
    params = dict(costs="sqeuclidean,cosine", targets="square,annulus", clusters="3,4", lam="1.0,2.0", steps=4,
                  points=16, eval_points=32, gw_iter=3, seeds="0,1", out_dir=str(out))
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(tmp_path / "toy.ipynb"), "--cwd", str(ROOT)]
    for k, v in params.items():
        cmd += ["-p", k, str(v)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    assert {p.name for p in out.iterdir()} == {"metrics.json", "history.csv", "curves", "figure2.png", "table.md"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"sqeuclidean", "cosine"}
    for cost in metrics:
        assert set(metrics[cost]) == {"none", "dst", "gmg", "checks"}
        assert metrics[cost]["checks"]["seeds"] == 2
        for method in ("none", "dst", "gmg"):
            assert metrics[cost][method]["fit_mean"] > 0 and metrics[cost][method]["fit_std"] >= 0
            assert 0 <= metrics[cost][method]["contiguity_mean"] <= 1
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["cost"], r["method"], r["seed"]) for r in rows} == {
        (c, m, s) for c in ("sqeuclidean", "cosine") for m in ("none", "dst", "gmg") for s in ("0", "1")}
    assert {r["step"] for r in rows} == {"1", "2", "3", "4"}
    curves = sorted(p.name for p in (out / "curves").iterdir())
    assert curves == sorted(f"{c}_{m}.csv" for c in ("sqeuclidean", "cosine") for m in ("none", "dst", "gmg"))
    table = (out / "table.md").read_text()
    assert table.count("±") == 2 * 3 * 4 and "2 seeds" in table
    assert (out / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp*"))   # atomic writes leave no temporary file behind


def test_dvc_stage_passes_every_toy_parameter():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["toy"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["toy"]
    for key in params:
        assert f"-p {key} ${{toy.{key}}}" in stage["cmd"], key
    assert "toy" in stage["params"] and "nbs/experiments/toy_maps.ipynb" in stage["deps"]
    assert "gmg/maps.py" in stage["deps"]
    # the notebook declares every parameter the stage passes
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    declared = {line.split(":")[0] for line in "".join(cell["source"]).splitlines() if ":" in line}
    assert set(params) <= declared

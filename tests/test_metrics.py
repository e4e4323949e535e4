"""gmg.metrics beyond the notebook: reproducibility across processes and worker counts, bad input for every
metric, invariances, and `evaluate` against the real datasets of gmg.datasets when they import."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gmg import metrics as M

SIZES = (3, 4, 5)


def _data(seed: int = 0, n_train: int = 300, n_test: int = 150, d: int = 5):
    "Codes that carry the factors through a random linear mix plus noise (neither perfect nor useless)."
    rng = np.random.default_rng(seed)
    draw = M.uniform_factor_sampler(SIZES)
    y, yt = draw(n_train, rng), draw(n_test, rng)
    mix = rng.normal(size=(len(SIZES), d))
    return (y @ mix + rng.normal(size=(n_train, d)), y, yt @ mix + rng.normal(size=(n_test, d)), yt)


MIX = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))


def _mixed_bands(bands):
    "An encoder whose codes are a fixed linear mix of the bands (entangled, informative)."
    return lambda x: bands.read_bands(x) @ MIX


def _all_scores(n_jobs: int) -> dict:
    z, y, zt, yt = _data()
    out = {}
    out.update(M.dci(z, y, zt, yt, seed=3, n_jobs=n_jobs))
    out.update(M.mig(z, y))
    out.update(M.sap(z, y, zt, yt, seed=3, n_jobs=n_jobs))
    out.update(M.modularity_explicitness(z, y, zt, yt, seed=3, n_jobs=n_jobs))
    bands = M.BandsDataset()
    out.update({f"evaluate_{k}": v for k, v in M.evaluate(
        _mixed_bands(bands), bands, metrics=M.METRICS, seed=5,
        sizes=M.MetricSizes().scaled(0.01), n_jobs=n_jobs).items()})
    return out


_CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from tests.test_metrics import _all_scores
print(json.dumps(_all_scores(n_jobs=2)))
"""


def test_same_seed_same_numbers_across_processes_and_n_jobs():
    here = _all_scores(n_jobs=1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED="12345")
    child = subprocess.run([sys.executable, "-c", _CHILD.format(root=root)], capture_output=True, text=True,
                           env=env, cwd=root, check=True)
    there = json.loads(child.stdout.strip().splitlines()[-1])
    assert there == here  # exact: every random choice comes from the seed


def test_different_seed_changes_the_sampled_points():
    bands = M.BandsDataset()
    enc = _mixed_bands(bands)
    a = M.evaluate(enc, bands, metrics=("sap",), seed=0, sizes=M.MetricSizes().scaled(0.01), n_jobs=1)
    b = M.evaluate(enc, bands, metrics=("sap",), seed=1, sizes=M.MetricSizes().scaled(0.01), n_jobs=1)
    assert a != b


def test_dci_is_invariant_to_permuting_the_code_dimensions():
    z, y, zt, yt = _data(seed=1)
    perm = np.random.default_rng(0).permutation(z.shape[1])
    base, importance = M.dci(z, y, zt, yt, n_jobs=1), M.gbt_importance(z, y, zt, yt, n_jobs=1)[0]
    permuted, importance_p = M.dci(z[:, perm], y, zt[:, perm], yt, n_jobs=1), \
        M.gbt_importance(z[:, perm], y, zt[:, perm], yt, n_jobs=1)[0]
    # not bit-exact: where two splits improve the loss equally (small leaves) the tree builder's feature
    # order breaks the tie, and that order follows the columns
    np.testing.assert_allclose(importance_p, importance[perm], atol=0.01)
    for k in base:
        assert permuted[k] == pytest.approx(base[k], abs=0.01)


def test_mig_and_modularity_are_invariant_to_an_increasing_affine_map_of_a_code():
    z, y, zt, yt = _data(seed=2)
    scaled = z * np.array([4.0, 1, 1, 1, 1]) + 8.0   # equal-width bins move with the code
    np.testing.assert_array_equal(M.discretize(scaled), M.discretize(z))
    assert M.mig(scaled, y)["mig"] == pytest.approx(M.mig(z, y)["mig"], abs=1e-12)
    assert M.modularity_explicitness(scaled, y, zt, yt, n_jobs=1)["modularity"] == pytest.approx(
        M.modularity_explicitness(z, y, zt, yt, n_jobs=1)["modularity"], abs=1e-12)


def _metric_calls(z, y, zt, yt):
    "Every metric as a one-argument-set call, so each bad input is tried on all of them."
    pairs = np.stack([np.stack([z[:40].reshape(5, 8, -1)] * 2, axis=1)])[0]
    labels = np.arange(5) % 3
    return {
        "dci": lambda: M.dci(z, y, zt, yt, n_jobs=1),
        "mig": lambda: M.mig(z, y),
        "sap": lambda: M.sap(z, y, zt, yt, n_jobs=1),
        "modularity_explicitness": lambda: M.modularity_explicitness(z, y, zt, yt, n_jobs=1),
        "factor_vae": lambda: M.factor_vae_score(z, z[:40].reshape(5, 8, -1), labels, z[:40].reshape(5, 8, -1),
                                                 labels),
        "beta_vae": lambda: M.beta_vae_score(pairs, labels, pairs, labels),
    }


@pytest.mark.parametrize("metric", ["dci", "mig", "sap", "modularity_explicitness", "factor_vae", "beta_vae"])
def test_nan_codes_are_a_clear_value_error(metric):
    z, y, zt, yt = _data()
    z = z.copy()
    z[7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _metric_calls(z, y, zt, yt)[metric]()


@pytest.mark.parametrize("metric", ["dci", "mig", "sap", "modularity_explicitness"])
def test_mismatched_lengths_are_a_clear_value_error(metric):
    z, y, zt, yt = _data()
    with pytest.raises(ValueError, match="same length"):
        _metric_calls(z[:-3], y, zt, yt)[metric]()


@pytest.mark.parametrize("metric", ["dci", "mig", "sap", "modularity_explicitness"])
def test_a_constant_factor_is_a_clear_value_error(metric):
    z, y, zt, yt = _data()
    y = y.copy()
    y[:, 1] = 2
    with pytest.raises(ValueError, match="factor 1 takes a single class"):
        _metric_calls(z, y, zt, yt)[metric]()


def test_torch_inputs_give_the_numpy_numbers():
    z, y, zt, yt = _data()
    as_t = torch.from_numpy
    assert M.mig(as_t(z).float().double(), as_t(y)) == M.mig(z, y)
    assert M.dci(as_t(z), as_t(y), as_t(zt), as_t(yt), n_jobs=1) == M.dci(z, y, zt, yt, n_jobs=1)


def test_evaluate_drops_size_one_factors_and_needs_two():
    bands = M.BandsDataset((1, 4, 1, 5))
    res = M.evaluate(lambda x: bands.read_bands(x)[:, [1, 3]], bands, metrics=("mig", "factor_vae"),
                     sizes=M.MetricSizes().scaled(0.01), n_jobs=1)
    assert res["mig"] > 0.9 and res["factor_vae_eval_accuracy"] == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        M.evaluate(lambda x: x.flatten(1)[:, :3], M.BandsDataset((1, 4, 1)), metrics=("mig",),
                   sizes=M.MetricSizes().scaled(0.01))


def test_evaluate_rejects_a_dataset_that_samples_out_of_range():
    bands = M.BandsDataset((3, 4))
    bands.sample_factors = lambda n, rng: np.full((n, 2), 7)
    with pytest.raises(ValueError, match="out of range"):
        M.evaluate(bands.read_bands, bands, metrics=("mig",), sizes=M.MetricSizes().scaled(0.01))


def test_evaluate_on_procedural_dsprites_with_a_hand_made_encoder():
    datasets = pytest.importorskip("gmg.datasets")
    ds = datasets.DSprites()
    grid = torch.linspace(0, 1, 64)

    def centroid(x):  # mass and centre of mass of the sprite: a code that knows position and size
        img = x[:, 0]
        mass = img.sum(dim=(1, 2)).clamp_min(1e-6)
        return torch.stack([mass / 4096, (img.sum(1) * grid).sum(1) / mass, (img.sum(2) * grid).sum(1) / mass], 1)

    sizes = M.MetricSizes(mig=600, modularity_train=600, modularity_test=300)
    a = M.evaluate(centroid, ds, metrics=("mig", "modularity_explicitness"), seed=0, sizes=sizes, n_jobs=1)
    b = M.evaluate(centroid, ds, metrics=("mig", "modularity_explicitness"), seed=0, sizes=sizes, n_jobs=1)
    assert a == b and all(np.isfinite(v) for v in a.values())
    assert a["mig"] > 0.2             # posX and posY are read off two separate code dimensions


def test_save_metrics_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    M.save_metrics({"mig": 0.5}, path)
    assert json.loads(path.read_text()) == {"mig": 0.5}

    def broken_dump(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(M.json, "dump", broken_dump)
    with pytest.raises(RuntimeError):
        M.save_metrics({"mig": 0.9}, path)
    assert json.loads(path.read_text()) == {"mig": 0.5}       # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def _serial_references():
    "The plain-loop versions of benchmarks/metrics_speed.py (one estimator or one vote at a time)."
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import metrics_speed
    return metrics_speed


def test_every_metric_agrees_with_a_plain_loop_version():
    ref = _serial_references()
    z, y, zt, yt = _data(seed=4, n_train=400, n_test=200)
    d = M.dci(z, y, zt, yt, seed=2, n_jobs=2)
    assert (d["dci_disentanglement"], d["dci_completeness"]) == ref.serial_dci(z, y, zt, yt, 2)
    assert M.mig(z, y)["mig"] == pytest.approx(ref.serial_mig(z, y), abs=1e-12)
    assert M.sap(z, y, zt, yt, seed=2)["sap"] == ref.serial_sap(z, y, zt, yt, 2)
    assert M.modularity_explicitness(z, y, zt, yt, seed=2)["explicitness_test"] == pytest.approx(
        ref.serial_explicitness(z, y, zt, yt, 2), abs=1e-12)
    rng = np.random.default_rng(0)
    draw, mix = M.uniform_factor_sampler(SIZES), rng.normal(size=(3, 5))
    code = lambda f: f @ mix + rng.normal(size=f.shape[:-1] + (5,))   # entangled codes: votes are not trivial
    ft, lt = M.fixed_factor_batches(draw, range(3), 300, 16, rng)
    fe, le = M.fixed_factor_batches(draw, range(3), 150, 16, rng)
    zv, bt, be = code(draw(500, rng)), code(ft), code(fe)
    score = M.factor_vae_score(zv, bt, lt, be, le, n_factors=3)["factor_vae_eval_accuracy"]
    assert score == ref.serial_factor_vae(zv, bt, lt, be, le, 3) and 0.4 < score < 1
    pt, qt = M.paired_factor_batches(draw, range(3), 300, 16, rng)
    pe, qe = M.paired_factor_batches(draw, range(3), 150, 16, rng)
    zp, ze = code(pt), code(pe)
    assert M.beta_vae_score(zp, qt, ze, qe, seed=2)["beta_vae_eval_accuracy"] == ref.serial_beta_vae(zp, qt, ze, qe, 2)

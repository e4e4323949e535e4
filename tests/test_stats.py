"""gmg.stats (nbs/17_stats.ipynb): the paired-difference statistics behind the report's verdicts.

Checked against scipy where scipy has the same quantity (t interval and p-value, sign test, exact sign-flip
permutation test, BCa interval), against a hand-computed Holm example, and by simulation: the verdict rule
must reproduce a true effect of 2 sd with 6 seeds in most studies, rarely "reproduce" no effect after Holm's
correction, and contradict an effect of the opposite sign. Every simulation is seeded.
"""
from __future__ import annotations
import math
import numpy as np
import pytest
from scipy import stats as sps

from gmg import stats

def studies(effects, count: int = 200, n: int = 6, seed: int = 0) -> np.ndarray:
    "Verdicts `(count, len(effects))`: each study judges one claim per effect (normal differences, sd 1) with Holm."
    rng = np.random.default_rng(seed)
    return np.array([[r["verdict"] for r in stats.judge_family([rng.normal(e, 1.0, n) for e in effects], alpha=0.05)]
                     for _ in range(count)])

def test_true_effect_of_2_sd_with_6_seeds_is_reproduced():
    alone = studies([2.0], seed=10)
    assert np.mean(alone[:, 0] == "reproduced") >= 0.8
    with_nulls = studies([2.0, 0.0, 0.0], seed=11)        # Holm across 3 claims, the 2 others without effect
    assert np.mean(with_nulls[:, 0] == "reproduced") >= 0.8

def test_no_effect_is_rarely_reproduced_after_holm():
    null = studies([0.0, 0.0, 0.0], seed=12)
    assert np.mean((null == "reproduced").any(axis=1)) <= 0.05      # any of the 3 claims, per study
    assert np.mean((null != "inconclusive").any(axis=1)) <= 0.08    # family-wise: ≤ α up to simulation noise

def test_negative_effect_is_contradicted():
    opposite = studies([-2.0, 0.0, 0.0], seed=13)
    assert np.mean(opposite[:, 0] == "contradicted") >= 0.8 and not (opposite[:, 0] == "reproduced").any()
    claimed_negative = stats.judge_family([np.random.default_rng(14).normal(-2.0, 1.0, 6)], directions=[-1])
    assert claimed_negative[0]["verdict"] == "reproduced"          # the paper's direction decides the name

@pytest.mark.parametrize("n", [2, 3, 6, 15])
def test_t_interval_and_p_match_scipy(n):
    d = np.random.default_rng(n).normal(0.2, 0.5, n)
    ref = sps.ttest_1samp(d, 0.0)
    for level in (0.9, 0.95):
        ci, mine = ref.confidence_interval(level), stats.t_test(d, level)
        assert mine["t_low"] == pytest.approx(ci.low, rel=1e-10) and mine["t_high"] == pytest.approx(ci.high, rel=1e-10)
    assert stats.t_test(d)["p_t"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert stats.paired_summary(d, 0.95)["t_low"] == pytest.approx(ref.confidence_interval(0.95).low, rel=1e-10)

def test_holm_matches_a_hand_computed_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.02, 0.5, 0.6]) == pytest.approx([0.06, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.1, float("nan")])

@pytest.mark.parametrize("d", [[1, 2, 3], [1, -2, 3, 4, 5, 6], [-1, -2, 0.5, -3, -4, -5, -6, -7], [0, 1, 2, -3, 4],
                               [0.3, -0.1]])
def test_sign_test_matches_binomtest(d):
    k, m = sum(x > 0 for x in d), sum(x != 0 for x in d)
    assert stats.sign_test(d) == pytest.approx(sps.binomtest(k, m, 0.5).pvalue, rel=1e-12)

def test_permutation_test_is_exact():
    assert stats.permutation_test([0.1, 0.2, 0.3]) == 0.25                    # 3 seeds: never below 0.25
    assert stats.permutation_test([1.0, 2.0, -4.0]) == 1.0
    d = np.random.default_rng(5).normal(0.4, 1.0, 9)
    ref = sps.permutation_test((d,), lambda x, axis: np.abs(x.sum(axis=axis)), permutation_type="samples",
                               n_resamples=np.inf, alternative="greater")
    assert stats.permutation_test(d) == pytest.approx(ref.pvalue, rel=1e-12)

def test_three_seeds_give_no_interval_from_the_range():
    d = [0.012, 0.041, 0.020]
    summary = stats.paired_summary(d, 0.95, n_boot=2000)
    assert math.isnan(summary["bca_low"]) and math.isnan(summary["bca_high"])   # no resampling interval
    assert summary["t_low"] < min(d) and summary["t_high"] > max(d)           # the t interval, not [min, max]
    with pytest.raises(ValueError, match="at least 6"):
        stats.bca_interval(d)
    six = stats.paired_summary(np.random.default_rng(6).normal(1.0, 1.0, 6), 0.95, n_boot=2000)
    assert six["bca_low"] < six["mean"] < six["bca_high"]

def test_bca_agrees_with_scipy():
    d = np.random.default_rng(7).exponential(1.0, 15)
    low, high = stats.bca_interval(d, 0.9, 20_000, seed=0)
    ref = sps.bootstrap((d,), np.mean, confidence_level=0.9, n_resamples=20_000, method="BCa",
                        rng=np.random.default_rng(1)).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.05) and high == pytest.approx(ref.high, abs=0.05)

def test_minimal_detectable_effect_has_the_stated_power():
    e = stats.standardized_mde(5, 0.05, 0.8)
    sims = np.random.default_rng(8).normal(e, 1.0, (40_000, 5))
    t = sims.mean(1) / (sims.std(1, ddof=1) / math.sqrt(5))
    assert np.mean(np.abs(t) > sps.t.ppf(0.975, 4)) == pytest.approx(0.8, abs=0.01)
    assert stats.min_detectable_effect(5, 0.3) == pytest.approx(0.3 * e)
    rows = stats.judge_family([[0.1, -0.2, 0.05], [0.3, 0.1, 0.2]], alpha=0.05)
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["mde_alpha"] == 0.025
    assert rows[0]["mde"] == pytest.approx(stats.min_detectable_effect(3, rows[0]["sd"], 0.025))

def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2"):
        stats.t_test([0.1])
    with pytest.raises(ValueError, match="finite"):
        stats.paired_summary([0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        stats.judge_family([[0.1, 0.2, 0.3]], alpha=1.5)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        stats.verdict(0.01, 0.2, alpha=0.0)
    with pytest.raises(ValueError, match="direction"):
        stats.verdict(0.01, 0.2, direction=2)
    with pytest.raises(ValueError, match="at least 2"):
        stats.judge_family([[0.1, 0.2], [0.3]])

def test_verdicts_of_a_claim_with_several_comparisons():
    assert stats.combine_verdicts(["reproduced", "reproduced"]) == "reproduced"
    assert stats.combine_verdicts(["reproduced", "inconclusive"]) == "inconclusive"
    assert stats.combine_verdicts(["inconclusive", "contradicted"]) == "contradicted"
    with pytest.raises(ValueError):
        stats.combine_verdicts(["not reproduced"])

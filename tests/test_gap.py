"""The GMG's ε rule and its plan at the training defaults: GW's invariances, a plan that sees the matching, no silent
zero, precision at the defaults, and the gradient as the derivative of the value once the solve has converged."""
import math
import warnings

import pytest
import torch

from gmg.costs import COST_KINDS, cost_matrix
from gmg.gap import DEFAULT_EPS0, epsilon_rule, gromov_monge_gap, gromov_monge_gap_from_costs
from gmg.train import TrainConfig

CONVERGED = dict(max_iter=300, tol=1e-10, sinkhorn_iter=2000, sinkhorn_tol=1e-11)
TRAINING = dict(eps0=TrainConfig().eps0, max_iter=TrainConfig().gw_max_iter, sinkhorn_iter=TrainConfig().sinkhorn_iter,
                warn_unconverged=False)


def _points(seed, n=24):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 5, dtype=torch.float64, generator=g),
            torch.randn(n, 3, dtype=torch.float64, generator=g).abs() + 0.1)


@pytest.mark.parametrize("cost", COST_KINDS)
def test_gap_unchanged_by_constants_added_to_the_costs(cost):
    x, y = _points(0)
    Cx = cost_matrix(x, cost)
    Cy = cost_matrix(y, cost).requires_grad_(True)
    base, _ = gromov_monge_gap_from_costs(Cx, Cy, **CONVERGED)
    (g_base,) = torch.autograd.grad(base, Cy)
    for a, b in ((3.0, 5.0), (-2.5, 0.7), (100.0, -40.0)):
        Cy_shift = (Cy.detach() + b).requires_grad_(True)
        shifted, _ = gromov_monge_gap_from_costs(Cx + a, Cy_shift, **CONVERGED)
        (g_shift,) = torch.autograd.grad(shifted, Cy_shift)
        assert abs(float(shifted.detach() - base.detach())) <= 1e-6 * abs(float(base.detach())), (a, b)
        assert torch.allclose(g_shift, g_base, rtol=1e-6, atol=1e-9 * float(g_base.abs().max()))


@pytest.mark.parametrize("cost", COST_KINDS)
def test_epsilon_rule_scales_with_a_rescaled_cost_and_the_plan_does_not_move(cost):
    x, y = _points(1)
    Cx, Cy = cost_matrix(x, cost), cost_matrix(y, cost)
    s = 7.5
    assert torch.allclose(epsilon_rule(s * Cx, Cy, 0.1), s * epsilon_rule(Cx, Cy, 0.1))
    assert torch.allclose(epsilon_rule(Cx + 2.0, Cy - 3.0, 0.1), epsilon_rule(Cx, Cy, 0.1))
    _, info = gromov_monge_gap_from_costs(Cx, Cy, **CONVERGED)
    _, scaled = gromov_monge_gap_from_costs(s * Cx, Cy, **CONVERGED)
    assert (info.coupling - scaled.coupling).abs().max() < 1e-8
    # both costs scaled by s: every term of GMG_ε (DST, E, ε·H) scales by s²
    both, _ = gromov_monge_gap_from_costs(s * Cx, s * Cy, **CONVERGED)
    base, _ = gromov_monge_gap_from_costs(Cx, Cy, **CONVERGED)
    assert abs(float(both) - s ** 2 * float(base)) <= 1e-6 * s ** 2 * abs(float(base))


def _decoder_batch(seed, n=64, noise=0.0, swapped=0.0):
    "64 latents → sigmoid(linear) 4096-pixel images; `swapped` of the pairs permuted among themselves."
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 10, generator=g)
    w = torch.randn(4096, 10, generator=g) / math.sqrt(10)
    images = torch.sigmoid(z @ w.T)
    images = images + noise * torch.randn(images.shape, generator=g)
    perm = torch.arange(n)
    k = int(swapped * n)
    chosen = torch.randperm(n, generator=g)[:k]
    perm[chosen] = chosen[torch.randperm(k, generator=g)]
    return z, images[perm], perm


@pytest.mark.parametrize("seed", range(3))
def test_plan_sees_the_matching_at_the_training_defaults(seed):
    n = 64
    z, images, _ = _decoder_batch(seed, noise=0.01)
    _, info = gromov_monge_gap(z, images, "cosine", return_info=True, **TRAINING)
    assert float(info.entropy) <= 1.2 * math.log(n), float(info.entropy) / math.log(n)
    z, images, perm = _decoder_batch(seed, swapped=0.25)
    assert (perm != torch.arange(n)).float().mean() >= 0.2      # the map is scrambled
    _, info = gromov_monge_gap(z, images, "cosine", return_info=True, **TRAINING)
    # y_i is the image of z[perm[i]]: the plan's row z_j should put its mass on the y holding f(z_j)
    recovered = (info.coupling.argmax(dim=1) == perm.argsort()).float().mean()
    assert recovered >= 0.9, float(recovered)
    # and the value is more than entropic blur: the plan's energy is below the map's own (DST = E(I/n))
    assert float(info.distortion - info.energy) > 0


def test_a_plan_that_underflows_warns_once_per_call_site():
    z, images, _ = _decoder_batch(0, n=32, swapped=0.25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")     # Python's own: once per call site
        warnings.filterwarnings("default", category=RuntimeWarning)
        for _ in range(3):
            gromov_monge_gap(z, images, "cosine", eps0=1e-9, warn_unconverged=False)
    underflow = [w for w in caught if "underflowed" in str(w.message)]
    assert len(underflow) == 1, [str(w.message) for w in caught]
    assert underflow[0].filename == __file__        # it names the caller's line, not the library's
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # at the default ε0: no warning at all
        gromov_monge_gap(z, images, "cosine", **TRAINING)


@pytest.mark.parametrize("scale", [1.0, 1e6])
@pytest.mark.parametrize("cost", COST_KINDS)
def test_float32_agrees_with_float64_at_the_defaults(cost, scale):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 6, dtype=torch.float64, generator=g)
    y = torch.randn(64, 3, dtype=torch.float64, generator=g)
    exact = gromov_monge_gap(scale * x, scale * y, cost, **CONVERGED)
    single = gromov_monge_gap((scale * x).float(), (scale * y).float(), cost, **CONVERGED)
    assert abs(float(single) - float(exact)) <= 1e-5 * abs(float(exact)), (float(single), float(exact))


@pytest.mark.parametrize("cost", COST_KINDS)
def test_autograd_is_the_derivative_of_the_value_once_converged(cost):
    "Central finite differences of the returned value (ε held fixed, as the rule holds it) against autograd."
    x, y = _points(3, n=16)
    # ε0 = 0.1: a converged solve in a test's budget for every cost (at 0.01 the cosine solve of these points does
    # not converge within 300 steps, and an unconverged plan is exactly the case this test excludes)
    eps = float(epsilon_rule(cost_matrix(x, cost), cost_matrix(y, cost), 0.1))
    y = y.requires_grad_(True)
    value = gromov_monge_gap(x, y, cost, eps=eps, **CONVERGED)
    (grad,) = torch.autograd.grad(value, y)
    direction = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    h = 1e-5
    plus = gromov_monge_gap(x, y.detach() + h * direction, cost, eps=eps, **CONVERGED)
    minus = gromov_monge_gap(x, y.detach() - h * direction, cost, eps=eps, **CONVERGED)
    fd, ad = float(plus - minus) / (2 * h), float((grad * direction).sum())
    assert abs(fd - ad) <= 1e-5 * abs(fd), (fd, ad)

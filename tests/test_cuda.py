"""gmg on CUDA tensors, unchanged: outputs on the inputs' device and dtype, the same numbers as on the CPU, and a
few training steps on the GPU. Skipped where no CUDA device exists (CI here); run by benchmarks/device_check.sh."""
from __future__ import annotations
import pytest
import torch
import gmg
import gmg.gromov
from gmg.gromov import entropic_gw

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TOL = {torch.float32: dict(rtol=1e-3, atol=1e-6), torch.float64: dict(rtol=1e-7, atol=1e-12)}

def _batch(dtype, n=64):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 16, 16, generator=gen, dtype=dtype)
    y = torch.randn(n, 10, generator=gen, dtype=dtype)
    return x, y

def _gap_and_gradient(x, y, device, cost):
    yd = y.detach().to(device).requires_grad_(True)       # a fresh leaf on each device
    gap = gmg.gromov_monge_gap(x.to(device), yd, cost=cost, eps0=0.01)
    assert gap.device.type == device and gap.dtype == y.dtype
    gap.backward()
    assert yd.grad.device.type == device
    return gap.detach().cpu(), yd.grad.cpu()

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cost", gmg.COST_KINDS)
def test_gap_and_gradient_match_cpu(dtype, cost, monkeypatch):
    x, y = _batch(dtype)
    cpu_gap, cpu_grad = _gap_and_gradient(x, y, "cpu", cost)
    # default on CUDA: graph blocks that grow, so Sinkhorn stops on another schedule: equal up to its tolerances
    gap, grad = _gap_and_gradient(x, y, "cuda", cost)
    torch.testing.assert_close(gap, cpu_gap, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(grad, cpu_grad, rtol=1e-2, atol=1e-3 * float(cpu_grad.abs().max()))
    # fixed-length blocks run the CPU's schedule: the same numbers up to rounding
    monkeypatch.setattr(gmg.gromov, "CUDA_BLOCK_GROWTH", 1)
    gap, grad = _gap_and_gradient(x, y, "cuda", cost)
    torch.testing.assert_close(gap, cpu_gap, **TOL[dtype])
    torch.testing.assert_close(grad, cpu_grad, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 100)

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_solver_on_device(dtype):
    gen = torch.Generator().manual_seed(1)
    pts = torch.randn(4, 48, 5, generator=gen, dtype=dtype)
    img = torch.randn(4, 48, 3, generator=gen, dtype=dtype)
    Cx, Cy = gmg.cost_matrix(pts, "scaled_sqeuclidean", batch_dims=1), gmg.cost_matrix(img, "scaled_sqeuclidean", batch_dims=1)
    cpu = entropic_gw(Cx, Cy, 0.05, max_iter=200, tol=1e-7, sinkhorn_tol=1e-8)
    gpu = entropic_gw(Cx.cuda(), Cy.cuda(), 0.05, max_iter=200, tol=1e-7, sinkhorn_tol=1e-8)
    assert gpu.coupling.device.type == "cuda" and gpu.coupling.dtype == dtype
    n = Cx.shape[-1]
    for dim in (-1, -2):
        torch.testing.assert_close(gpu.coupling.sum(dim), torch.full_like(gpu.coupling.sum(dim), 1 / n), rtol=0, atol=1e-5)
    torch.testing.assert_close(gpu.value.cpu(), cpu.value, **TOL[dtype])

def test_small_eps_float32_on_device_is_finite():
    x, y = _batch(torch.float32)
    gap, info = gmg.gromov_monge_gap(x.cuda(), y.cuda(), eps0=1e-4, return_info=True, warn_unconverged=False)
    assert bool(torch.isfinite(gap)) and float(gap) >= 0
    # the same batch in float64 on the CPU: float32 on the GPU is right, or says it did not converge
    ref = gmg.gromov_monge_gap(x.double(), y.double(), eps0=1e-4, max_iter=200, warn_unconverged=False)
    assert not bool(info.converged.all()) or abs(float(gap) - float(ref)) <= 1e-3 * float(ref)

def test_training_steps_on_cuda(tmp_path):
    from gmg.train import TrainConfig, train, load_model
    config = TrainConfig(dataset="dsprites", batch_size=16, steps=6, checkpoint_every=3, log_every=2, device="cuda",
                         regularizer="gmg", target="decoder", cost="cosine", lam=1.0, seed=0)
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["finished"] and summary["step"] == 6
    assert summary["reg_grad_active"] == 1.0          # the GMG gradient acts on every logged step
    model, _, step = load_model(tmp_path / "run")
    assert step == 6 and all(torch.isfinite(p).all() for p in model.parameters())

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_graph_blocks_match_eager(dtype, monkeypatch):
    # the graph-replayed Sinkhorn blocks must be the eager loop's arithmetic: the same plan and value
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 64, 5, generator=gen, dtype=dtype).cuda()
    y = torch.sin(3 * x[..., :2])                   # a folding map: the plan moves away from the identity
    Cx, Cy = gmg.cost_matrix(x, "sqeuclidean", batch_dims=1), gmg.cost_matrix(y, "sqeuclidean", batch_dims=1)
    eps = 0.01 * Cx.mean() * Cy.mean()
    solve = lambda: [entropic_gw(Cx, Cy, eps, check_every=k) for k in (2, 8, 2)]    # the third call replays
    grown = solve()                                  # default: blocks grow (fewer checks, a few more iterations)
    monkeypatch.setattr(gmg.gromov, "CUDA_BLOCK_GROWTH", 1)
    graphed = solve()                                # fixed blocks: the same iterations as the eager loop
    assert gmg.gromov.CUDA_GRAPHS, "graph capture failed (a warning says why)"
    cache = gmg.gromov._graph_local.cache
    assert any(b.graphs for b in cache.values()), "no CUDA graph was captured"
    monkeypatch.setattr(gmg.gromov, "CUDA_GRAPHS", False)
    predicted = solve()                              # the eager loop's own schedule: checks where the rate predicts
    # checked every `check_every` iterations, as the fixed graphed blocks are: the same iterations
    monkeypatch.setattr(gmg.gromov, "_predicted_block", lambda err, prev, steps, every, tol: every)
    eager = solve()
    for p, e in zip(predicted, eager):
        assert float((p.coupling - e.coupling).abs().sum(dim=(-1, -2)).max()) < 1e-2
        torch.testing.assert_close(p.value, e.value, rtol=1e-3, atol=0)
    for g, e, gr in zip(graphed, eager, grown):
        # (iteration counts are not compared: a last-digit difference may move a stop by one check)
        torch.testing.assert_close(g.coupling, e.coupling, rtol=1e-4, atol=1e-8)
        torch.testing.assert_close(g.value, e.value, rtol=1e-5, atol=0)
        # growing blocks check less often: the same solution up to the stopping tolerances
        assert float((gr.coupling - e.coupling).abs().sum(dim=(-1, -2)).max()) < 1e-2
        torch.testing.assert_close(gr.value, e.value, rtol=1e-3, atol=0)

def test_low_rank_path_on_device():
    # low_rank=True on CUDA (auto uses it on the CPU only): the factors and the solver match the direct products
    gen = torch.Generator().manual_seed(3)
    pts = torch.randn(2, 160, 10, generator=gen, dtype=torch.float64).cuda()
    wide = torch.randn(2, 160, 300, generator=gen, dtype=torch.float64).cuda()
    Cl = gmg.cost_matrix(pts, "scaled_sqeuclidean", batch_dims=1)
    Cf = gmg.cost_matrix(wide, "scaled_sqeuclidean", batch_dims=1)
    Q, B = gmg.gromov.low_rank_factor(Cl)
    assert Q.device.type == "cuda" and gmg.gromov.low_rank_factor(Cf) is None
    torch.testing.assert_close(Q @ B, Cl, rtol=0, atol=1e-12)
    eps = 0.02 * Cf.mean() * Cl.mean()
    direct, factored = entropic_gw(Cf, Cl, eps, low_rank=False), entropic_gw(Cf, Cl, eps, low_rank=True)
    torch.testing.assert_close(factored.coupling, direct.coupling, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(factored.value, direct.value, rtol=1e-8, atol=0)

def test_autocast_and_half_inputs_on_device():
    # under AMP (float16 autocast) the gap is the float32 one; float16 leaves get a float16 gradient
    x, y = (t.cuda() for t in _batch(torch.float32))
    reference = gmg.gromov_monge_gap(x, y, eps0=0.01)
    with torch.autocast("cuda", dtype=torch.float16):
        amp = gmg.gromov_monge_gap(x, y, eps0=0.01)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, reference, rtol=1e-6, atol=0)
    y_half = y.half().requires_grad_(True)
    half = gmg.gromov_monge_gap(x.half(), y_half, eps0=0.01)
    assert half.dtype == torch.float32 and bool(torch.isfinite(half))
    half.backward()
    assert y_half.grad.dtype == torch.float16 and bool(torch.isfinite(y_half.grad).all())

"""gmg on CUDA tensors, unchanged: outputs on the inputs' device and dtype, the same numbers as on the CPU, and a
few training steps on the GPU. Skipped where no CUDA device exists (CI here); run by benchmarks/device_check.sh."""
from __future__ import annotations
import pytest
import torch
import gmg
from gmg.gromov import entropic_gw

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TOL = {torch.float32: dict(rtol=1e-3, atol=1e-6), torch.float64: dict(rtol=1e-7, atol=1e-12)}

def _batch(dtype, n=64):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 16, 16, generator=gen, dtype=dtype)
    y = torch.randn(n, 10, generator=gen, dtype=dtype)
    return x, y

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cost", gmg.COST_KINDS)
def test_gap_and_gradient_match_cpu(dtype, cost):
    x, y = _batch(dtype)
    values, grads = [], []
    for device in ("cpu", "cuda"):
        yd = y.to(device).requires_grad_(True)
        gap = gmg.gromov_monge_gap(x.to(device), yd, cost=cost, eps0=0.01, guard_sign=False)
        assert gap.device.type == device and gap.dtype == dtype
        gap.backward()
        assert yd.grad.device.type == device
        values.append(gap.detach().cpu())
        grads.append(yd.grad.cpu())
    torch.testing.assert_close(values[1], values[0], **TOL[dtype])
    torch.testing.assert_close(grads[1], grads[0], rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 100)

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
    gap = gmg.gromov_monge_gap(x.cuda(), y.cuda(), eps0=1e-4)
    assert bool(torch.isfinite(gap)) and float(gap) >= 0

def test_training_steps_on_cuda(tmp_path):
    from gmg.train import TrainConfig, train, load_model
    config = TrainConfig(dataset="dsprites", batch_size=16, steps=6, checkpoint_every=3, log_every=2, device="cuda",
                         regularizer="gmg", target="decoder", cost="cosine", lam=1.0, seed=0)
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["finished"] and summary["step"] == 6
    model, _, step = load_model(tmp_path / "run")
    assert step == 6 and all(torch.isfinite(p).all() for p in model.parameters())

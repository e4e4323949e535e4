"""Sinkhorn on a GPU: the eager loop against blocks replayed from CUDA graphs (fixed and growing), one GMG value +
gradient (`entropic_gw` + energy + backward), float32, ε0 = 0.01, median of 9 after 2 warm-ups.

Two regimes: "benchmark" — gmg_speed's random images vs random codes with the gap's default 50 × 100 budget
(projections converge in about 2 iterations); "training" — the 10 × 30 budget of training on a folded 10-d → 3-d
map, where projections run to their cap. The table of the CUDA-graph path in nbs/20_speed.ipynb comes from this script.

    python benchmarks/sinkhorn_cuda.py [--sizes 64,256,1024]
"""
from __future__ import annotations
import argparse, statistics, time
import torch
import gmg.gromov as G
from gmg.costs import cost_matrix
from gmg.gap import epsilon_rule, distortion_from_costs

VARIANTS = {"eager, check 2": (False, 1, 2), "graphs, check 2": (True, 1, 2),
            "graphs, check 2 growing (default)": (True, 8, 2), "graphs, check 8": (True, 1, 8)}
REGIMES = {"benchmark (gap 50x100)": dict(max_iter=50, tol=1e-4, sinkhorn_iter=100, sinkhorn_tol=1e-4),
           "training (gap 10x30)": dict(max_iter=10, tol=1e-4, sinkhorn_iter=30, sinkhorn_tol=1e-4)}


def one_gap(Cx, Cy, eps0, settings):
    "One GMG value + gradient in Cy; returns (value, mirror-descent steps, Sinkhorn iterations)."
    Cy = Cy.detach().requires_grad_(True)
    eps = epsilon_rule(Cx, Cy, eps0)
    eps_start = epsilon_rule(Cx, Cy, 0.05) if 0.05 > eps0 else None
    sol = G.entropic_gw(Cx, Cy, eps, check_finite=False, eps_start=eps_start, with_value=False, **settings)
    gap = distortion_from_costs(Cx, Cy) - G.gw_energy(Cx, Cy, sol.coupling)
    gap.backward()
    torch.cuda.synchronize()
    return float(gap.detach()), sol.n_iter, sol.sinkhorn_iter


def regime_data(n, gen):
    z = torch.randn(n, 10, generator=gen)
    return {"benchmark (gap 50x100)": (torch.rand(n, 3 * 64 * 64, generator=gen), torch.randn(n, 10, generator=gen)),
            "training (gap 10x30)": (z, torch.sin(3 * z[:, :3]) + 0.1 * torch.randn(n, 3, generator=gen))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,256,1024")
    ap.add_argument("--eps0", type=float, default=0.01)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("sinkhorn_cuda.py needs a CUDA device")
    saved = G.CUDA_GRAPHS, G.CUDA_BLOCK_GROWTH
    gen = torch.Generator().manual_seed(0)
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; ε0 {args.eps0}\n")
    print("| n | regime | variant | ms (median of 9) | GMG | MD steps | Sinkhorn its |\n|---:|---|---|---:|---:|---:|---:|")
    for n in map(int, args.sizes.split(",")):
        data = regime_data(n, gen)
        for regime, settings in REGIMES.items():
            x, y = (t.cuda() for t in data[regime])
            Cx, Cy = cost_matrix(x, "cosine"), cost_matrix(y, "cosine")
            for name, (graphs, growth, check_every) in VARIANTS.items():
                G.CUDA_GRAPHS, G.CUDA_BLOCK_GROWTH = graphs, growth
                s = dict(settings, check_every=check_every)
                for _ in range(2):
                    one_gap(Cx, Cy, args.eps0, s)
                times = []
                for _ in range(9):
                    t0 = time.perf_counter()
                    value, steps, its = one_gap(Cx, Cy, args.eps0, s)
                    times.append(time.perf_counter() - t0)
                print(f"| {n} | {regime} | {name} | {statistics.median(times) * 1e3:.2f} | {value:.6g} | {steps} | {its} |",
                      flush=True)
    G.CUDA_GRAPHS, G.CUDA_BLOCK_GROWTH = saved


if __name__ == "__main__":
    main()

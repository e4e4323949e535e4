"""Speed of one Gromov-Monge gap value + gradient: gmg against POT's entropic GW, measured in the same run.

The setting of the encoder regularizer: x = a batch of n RGB images 64x64x3 (the reference, no gradient),
y = their n 10-d latent codes (gradient wanted), cosine costs. Both libraries get the same cost matrices and the
same ε (POT's `epsilon` = 2ε: it writes the energy without the ½), start from the identity coupling, and return a
differentiable GMG = DST − GW-energy; POT's gradient comes through its torch backend.

Two timings: *end to end* (points → cost matrices → GMG → backward; the image cost matrix, the same for both,
dominates at large n) and *from the costs* (the same two cost matrices in, GMG and its gradient out: the solver).
gmg runs in float32 (what training uses) and float64; POT in float64, since in float32 its plain Sinkhorn
underflows at these ε and returns no plan (last column). Speed-ups compare float64 with float64. The value
shown is DST − E(P_ε), the quantity POT computes (gmg's GMG_ε adds ε·H(P_ε), a constant in the costs: the
gradient and the time are the same).

    python benchmarks/gmg_speed.py [--threads 1] [--repeats 15] [--device cpu] [--sizes 64,256,1024] [--json FILE]

`--json` also writes the rows (milliseconds, values) for the README (tools/readme_tables.py, block `gmg_speed`).
"""
from __future__ import annotations
import argparse, json, os, statistics, time, warnings
from pathlib import Path
import numpy as np
import torch
try:   # POT is a dependency of gmg's tests, not of gmg: a bare GPU machine can still time gmg alone
    import ot
except ImportError:
    ot = None
import gmg
from gmg.costs import cost_matrix
from gmg.gap import distortion_from_costs, epsilon_rule


def gmg_value(Cx, Cy, eps0):
    "gmg's GMG_ε with its gradient, minus its entropy term ε·H(P_ε) (a constant in the costs, so the same gradient)."
    gap, info = gmg.gromov_monge_gap_from_costs(Cx, Cy, eps0, warn_unconverged=False)
    return gap - info.eps * info.entropy    # DST − E(P_ε): the quantity POT's energy gives


def pot_value(Cx, Cy, eps0):
    "POT's entropic GW on the same matrices; None when POT returns no plan (its Sinkhorn underflows)."
    eps = float(epsilon_rule(Cx, Cy, eps0))
    n = Cx.shape[0]
    p = torch.full((n,), 1.0 / n, dtype=Cx.dtype, device=Cx.device)
    G0 = torch.eye(n, dtype=Cx.dtype, device=Cx.device) / n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gw2 = ot.gromov.entropic_gromov_wasserstein2(Cx, Cy, p, p, "square_loss", epsilon=2 * eps, G0=G0)
    if not torch.isfinite(gw2) or float(gw2.detach()) == 0.0:
        return None
    return distortion_from_costs(Cx, Cy) - gw2 / 2     # POT's energy has no ½


def run(value_fn, x, z, from_costs, cost):
    "One GMG value + gradient; returns the value (NaN if the solver returned no plan)."
    z = z.detach().clone().requires_grad_(True)
    Cx = cost_matrix(x, cost)
    if from_costs:
        Cy = cost_matrix(z, cost).detach().requires_grad_(True)
        t0 = time.perf_counter()
        value = value_fn(Cx, Cy)
    else:
        t0 = time.perf_counter()
        value = value_fn(cost_matrix(x, cost), cost_matrix(z, cost))
    if value is None:
        return float("nan"), time.perf_counter() - t0
    value.backward()
    if x.device.type == "cuda": torch.cuda.synchronize()
    return float(value.detach()), time.perf_counter() - t0


def median_time(value_fn, x, z, from_costs, cost, repeats):
    times = [run(value_fn, x, z, from_costs, cost)[1] for _ in range(repeats + 2)][2:]   # two warm-ups
    return statistics.median(times)


def _pot_f32(value):
    return "not run" if value is None else "no plan" if np.isnan(value) else f"{value:.6g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cost", default="cosine")
    ap.add_argument("--sizes", default="64,256,1024")
    ap.add_argument("--eps0", default="0.01,0.1")
    ap.add_argument("--pot-max-n", type=int, default=1024, help="skip POT above this n")
    ap.add_argument("--json", default="", help="also write the rows here (README: tools/readme_tables.py)")
    args = ap.parse_args()
    load_before = os.getloadavg()
    records = []
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"device: {name}; cost {args.cost}; median of {args.repeats} (3 at n > 256); "
          f"torch {torch.__version__}, POT {ot.__version__ if ot else 'not installed (POT columns empty)'}\n")
    print("| n | ε0 | end to end: gmg f32 ms | gmg f64 ms | POT f64 ms | speed-up | from the costs: gmg f64 ms "
          "| POT f64 ms | speed-up | GMG_ε gmg (raw) | GMG_ε POT | POT f32 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    gen = torch.Generator().manual_seed(0)
    for n in map(int, args.sizes.split(",")):
        x64 = torch.rand(n, 3, 64, 64, generator=gen, dtype=torch.float64).to(device)
        z64 = torch.randn(n, 10, generator=gen, dtype=torch.float64).to(device)
        x32, z32 = x64.float(), z64.float()
        reps = args.repeats if n <= 256 else 3
        for eps0 in map(float, args.eps0.split(",")):
            ours = lambda Cx, Cy: gmg_value(Cx, Cy, eps0)
            pots = lambda Cx, Cy: pot_value(Cx, Cy, eps0)
            e32 = median_time(ours, x32, z32, False, args.cost, reps)
            e64 = median_time(ours, x64, z64, False, args.cost, reps)
            c64 = median_time(ours, x64, z64, True, args.cost, reps)
            raw = run(ours, x64, z64, True, args.cost)[0]
            row = f"| {n} | {eps0:g} | {e32 * 1e3:.2f} | {e64 * 1e3:.2f} | "
            if ot is not None and n <= args.pot_max_n:
                pe = median_time(pots, x64, z64, False, args.cost, min(reps, 3) if n > 64 else reps)
                pc = median_time(pots, x64, z64, True, args.cost, min(reps, 3) if n > 64 else reps)
                v_pot = run(pots, x64, z64, True, args.cost)[0]
                # POT's float32 run only shows whether it finds a plan; on a GPU it can run to its iteration cap
                v32 = run(pots, x32, z32, True, args.cost)[0] if device.type == "cpu" else None
                row += (f"{pe * 1e3:.1f} | {pe / e64:.1f}x | {c64 * 1e3:.2f} | {pc * 1e3:.1f} | {pc / c64:.0f}x | "
                        f"{raw:.6g} | {v_pot:.6g} | {_pot_f32(v32)} |")
            else:
                pe = pc = v_pot = v32 = None
                row += f"— | — | {c64 * 1e3:.2f} | — | — | {raw:.6g} | — | — |"
            print(row, flush=True)
            ms = lambda t: None if t is None else t * 1e3
            records.append({"n": n, "eps0": eps0, "repeats": reps, "gmg_f32_end_to_end_ms": ms(e32),
                            "gmg_f64_end_to_end_ms": ms(e64), "pot_f64_end_to_end_ms": ms(pe),
                            "gmg_f64_from_costs_ms": ms(c64), "pot_f64_from_costs_ms": ms(pc),
                            "value_gmg": raw, "value_pot": _finite(v_pot), "pot_f32": _pot_f32(v32)})
    if args.json:
        record = {"device": name, "cost": args.cost, "threads": args.threads, "torch": torch.__version__,
                  "pot": ot.__version__ if ot else None, "load_average_before": list(load_before),
                  "eps_rule": "eps0 * spread(Cx) * spread(Cy) (gmg.gap.epsilon_rule)", "rows": records}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


def _finite(value):
    "A JSON-safe value: None for a missing or NaN one."
    return None if value is None or np.isnan(value) else value


if __name__ == "__main__":
    main()

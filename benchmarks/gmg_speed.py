"""Speed of one Gromov-Monge gap value + gradient: gmg against POT's entropic GW, measured in the same run.

The problem is a batch that training meets, with structure a plan can find: the decoder setting of the study
(`target: decoder`, cosine costs) on a perfect decoder. x = the ground-truth factors of n dSprites images
(standardized per factor; the reference, no gradient), y = their rendered 64x64 images (gradient wanted), both
drawn by `gmg.datasets` from one seed. (Random images against random codes, this script's earlier problem, have
costs with almost no structure: at the spread ε rule POT's Sinkhorn returned NaN there and the two solvers' plans
differed, so there was nothing to compare.)

Both libraries get the same two cost matrices and the same ε (POT's `epsilon` = 2ε: it writes the energy without
the ½) and return a differentiable DST − E(P_ε) with its gradient (gmg's GMG_ε adds ε·H(P_ε), which does not
change the gradient; POT's gradient comes through its torch backend). Timed, each from the cost matrices:
- gmg float32 at training's budget (20 mirror-descent steps × 30 Sinkhorn iterations): what a training step pays;
- gmg float64 at the library's default budget (50 × 100, tolerances 1e-4);
- POT float64 at gmg's default caps (50 × 100), and at its own defaults (1000 × 1000, tolerances 1e-9), both started
  from the identity coupling as gmg is.
Each value is compared with a reference: gmg run to 1000 × 1000 steps at tolerances 1e-9 (untimed; n ≤ 256).
GW is not convex: the two solvers may end in different local optima (gmg anneals ε from 0.3, POT does not), so the
table also gives the share of rows where a plan's largest entry sits in the same column as the reference's, and a
larger DST − E(P_ε) means a lower GW energy, i.e. a better optimum.

    python benchmarks/gmg_speed.py [--threads 1] [--repeats 5] [--sizes 64,256,1024] [--json FILE]
    python benchmarks/gmg_speed.py --device cuda --pot-max-n 256   # gmg on the GPU; POT stays on the CPU

`--json` writes the rows for the generated table of nbs/20_speed.ipynb (tools/readme_tables.py, block `gmg_speed`).
"""
from __future__ import annotations
import argparse, json, os, statistics, time, warnings
from pathlib import Path
import numpy as np
import torch
try:   # POT is a dependency of gmg's tests, not of gmg: a bare machine can still time gmg alone
    import ot
except ImportError:
    ot = None
import gmg
from gmg.costs import cost_matrix
from gmg.datasets import load
from gmg.gap import distortion_from_costs, epsilon_rule

TRAINING = dict(max_iter=20, sinkhorn_iter=30)     # TrainConfig's gw_max_iter × sinkhorn_iter
DEFAULT = dict()                                    # the library's defaults (50 × 100, tolerances 1e-4)
DEFAULT_CAPS = (50, 100)                            # the same caps for POT (its tolerances stay 1e-9)
REFERENCE = dict(max_iter=1000, tol=1e-9, sinkhorn_iter=1000, sinkhorn_tol=1e-9)   # POT's caps and tolerances


def structured_batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    "Standardized ground-truth factors `(n, 5)` and their dSprites images `(n, 1, 64, 64)`, float64."
    images, factors = load("dsprites").sample(n, seed)
    f = factors.double()
    return (f - f.mean(0)) / f.std(0).clamp_min(1e-12), images.double()


def gmg_solve(Cx, Cy, eps0, budget):
    "gmg's DST − E(P_ε) (its GMG_ε minus the entropy term, which has no gradient) and its plan."
    gap, info = gmg.gromov_monge_gap_from_costs(Cx, Cy, eps0, warn_unconverged=False, **budget)
    return gap - info.eps * info.entropy, info.coupling


def pot_solve(Cx, Cy, eps0, budget=None):
    """POT's entropic GW on the same matrices and ε, from I/n; (None, None) when POT returns no plan.

    `budget`: None for POT's defaults, or gmg's (max_iter, sinkhorn_iter) caps for a run at the same budget.
    POT solves on detached costs; its value is then POT's own GW loss at that plan on the differentiable costs, so
    the gradient is the envelope gradient at the plan, as gmg's (POT's entropic_gromov_wasserstein2 would instead
    backpropagate through every unrolled iteration: a different derivative, and a slower one)."""
    eps = float(epsilon_rule(Cx, Cy, eps0))
    n = Cx.shape[0]
    p = torch.full((n,), 1.0 / n, dtype=Cx.dtype)
    caps = {} if budget is None else {"max_iter": budget[0], "numItermax": budget[1]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = ot.gromov.entropic_gromov_wasserstein(Cx.detach(), Cy.detach(), p, p, "square_loss", epsilon=2 * eps,
                                                     G0=torch.eye(n, dtype=Cx.dtype) / n, **caps)
    if not torch.isfinite(plan).all() or abs(float(plan.sum()) - 1) > 1e-5:
        return None, None
    energy = ot.gromov.gwloss(*ot.gromov.init_matrix(Cx, Cy, p, p, "square_loss"), plan)
    return distortion_from_costs(Cx, Cy) - energy / 2, plan     # POT's energy has no ½


def timed(solve, Cx, Cy):
    "One value + gradient w.r.t. Cy: (value, plan, seconds); value NaN when the solver returned no plan."
    Cy = Cy.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    value, plan = solve(Cx, Cy)
    if value is None:
        return float("nan"), None, time.perf_counter() - t0
    value.backward()
    if Cy.is_cuda:
        torch.cuda.synchronize(Cy.device)
    return float(value.detach()), plan.detach().cpu(), time.perf_counter() - t0


def median_time(solve, Cx, Cy, repeats):
    "The median over `repeats` runs after one warm-up, with the last run's value and plan."
    runs = [timed(solve, Cx, Cy) for _ in range(repeats + 1)][1:]
    return statistics.median(r[2] for r in runs), runs[-1][0], runs[-1][1]


def same_rows(plan, reference) -> float | None:
    "Share of rows whose largest entry is in the same column in both plans."
    if plan is None or reference is None:
        return None
    return float((plan.argmax(1) == reference.argmax(1)).double().mean())


def relative(value, reference):
    return None if reference is None or not np.isfinite(value) else abs(value - reference) / abs(reference)


def measure(n, eps0, repeats, pot_max_n, reference_max_n, seed=0, device="cpu"):
    """One row: timings, values and agreement of gmg (training, default budgets) and POT at one n and ε0.
    gmg and its reference run on `device`; POT on the CPU, on the same matrices."""
    x, y = structured_batch(n, seed)
    Cx, Cy = cost_matrix(x.to(device), "cosine"), cost_matrix(y.to(device), "cosine")
    row = {"n": n, "eps0": eps0, "repeats": repeats}
    ref_value = ref_plan = None
    if n <= reference_max_n:
        ref_value, ref_plan, _ = timed(lambda a, b: gmg_solve(a, b, eps0, REFERENCE), Cx, Cy)
    for name, dtype, budget in (("gmg_training_f32", torch.float32, TRAINING),
                                ("gmg_default_f64", torch.float64, DEFAULT)):
        t, v, plan = median_time(lambda a, b: gmg_solve(a, b, eps0, budget), Cx.to(dtype), Cy.to(dtype), repeats)
        row[name] = {"ms": t * 1e3, "value": v, "rel_error": relative(v, ref_value),
                     "same_rows": same_rows(plan, ref_plan)}
    if ot is not None and n <= pot_max_n:
        for name, budget in (("pot_default_budget_f64", DEFAULT_CAPS), ("pot_f64", None)):
            t, v, plan = median_time(lambda a, b: pot_solve(a, b, eps0, budget), Cx.cpu(), Cy.cpu(),
                                     min(repeats, 3))
            row[name] = {"ms": t * 1e3, "value": None if np.isnan(v) else v, "rel_error": relative(v, ref_value),
                         "same_rows": same_rows(plan, ref_plan)}
    row["reference_value"] = ref_value
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where gmg runs (POT: the CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="64,256,1024")
    ap.add_argument("--eps0", default="0.01,0.1")
    ap.add_argument("--pot-max-n", type=int, default=256, help="skip POT above this n (n = 256: ~16 s a call)")
    ap.add_argument("--reference-max-n", type=int, default=256, help="skip the reference solve above this n")
    ap.add_argument("--json", default="", help="also write the rows here (tools/readme_tables.py)")
    args = ap.parse_args()
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    rows = []
    for n in map(int, args.sizes.split(",")):
        for eps0 in map(float, args.eps0.split(",")):
            rows.append(measure(n, eps0, args.repeats if n <= 256 else 3, args.pot_max_n, args.reference_max_n,
                                device=args.device))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        where = (f"{torch.cuda.get_device_name()} (CUDA)" if args.device == "cuda"
                 else f"CPU, {args.threads} thread(s)")
        record = {"device": where, "threads": args.threads, "cost": "cosine",
                  "problem": "dSprites: standardized factors -> rendered images (a perfect decoder), seed 0",
                  "torch": torch.__version__, "pot": ot.__version__ if ot else None,
                  "load_average_before": list(load_before), "budgets": {"training": TRAINING, "pot_default_caps": DEFAULT_CAPS, "reference": REFERENCE},
                  "eps_rule": "eps0 * spread(Cx) * spread(Cy) (gmg.gap.epsilon_rule)", "rows": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

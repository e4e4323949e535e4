"""How close is the training budget's GMG gradient to a converged solve's, on the batches trained decoders meet?

    python tools/gradient_honesty.py                       # the cpu profile's GMG runs (results/runs/*-gmg-*)
    python tools/gradient_honesty.py --runs DIR [DIR ...]  # any gmg.train run folders (e.g. pilot runs)
    python tools/gradient_honesty.py --check               # exit 1 if the committed table is not what the file says

For each run: its checkpoint's model, BATCHES batches of 64 images of its dataset (seeded), the map the run
regularized (`gmg.regularizers.map_pair`: posterior codes → decoded images for the decoder target). For each
budget (mirror-descent steps × Sinkhorn iterations) the gradient of GMG_ε in the decoder's parameters — the
training signal itself — is compared with that of a converged solve (CONVERGED) by their cosine; also the
relative error of the value and whether the budget's solve converged. ε follows the run's own ε0 (the rule holds
ε fixed, so the two solves differentiate the same function). Writes results/ablation/gradient_honesty.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from gmg.gap import gromov_monge_gap
from gmg.regularizers import map_pair
from gmg.train import TrainConfig, load_model, regularized_network

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "ablation"
BATCHES = 4
BUDGETS = {"10x30": (10, 30), "20x30 (training default)": (TrainConfig().gw_max_iter, TrainConfig().sinkhorn_iter),
           "50x100 (library default)": (50, 100)}
CONVERGED = dict(max_iter=300, sinkhorn_iter=1000, tol=1e-7, sinkhorn_tol=1e-9)
EPS0S = (0.1, 0.03, 0.01)


def _gradient(model, network, ref, img_fn, config, **budget):
    model.zero_grad(set_to_none=True)
    value, info = gromov_monge_gap(ref, img_fn(), config.cost, eps0=config.eps0, warn_unconverged=False,
                                   return_info=True, **budget)
    value.backward()
    grad = torch.cat([p.grad.flatten() for p in network.parameters() if p.grad is not None])
    return grad, float(value.detach()), bool(info.converged.all())


def batches(model, config):
    "The BATCHES seeded batches of the run's dataset, with the model's output on each: `(b, x, out)`."
    from gmg import datasets
    cache = ROOT / "results" / "cache" / "datasets"
    data = datasets.load(config.dataset, **({"cache_dir": str(cache)} if cache.is_dir() else {}))
    rng = np.random.default_rng(12345)
    for b in range(BATCHES):
        x = torch.as_tensor(data.sample(config.batch_size, rng)[0], dtype=torch.float32)
        with torch.no_grad():
            yield b, x, model(x, generator=torch.Generator().manual_seed(b))


def measure(run: Path) -> list[dict]:
    model, config, step = load_model(run)
    spec = config.regularizer_spec()
    network = regularized_network(model, spec)
    rows = []
    for b, x, out in batches(model, config):
        ref = out.z.detach()
        # the image is recomputed from the decoder each time so that its parameters get the gradient
        img_fn = (lambda: torch.sigmoid(model.decoder(ref))) if spec.target == "decoder" else (lambda: model.encode(x))
        if spec.target == "encoder":
            ref = x
        g_ref, v_ref, _ = _gradient(model, network, ref, img_fn, config, **CONVERGED)
        for name, (mi, si) in BUDGETS.items():
            g, v, conv = _gradient(model, network, ref, img_fn, config, max_iter=mi, sinkhorn_iter=si)
            rows.append({"run": run.name, "step": step, "batch": b, "budget": name,
                         "cosine": float(torch.nn.functional.cosine_similarity(g, g_ref, dim=0)),
                         "value_rel_error": abs(v - v_ref) / abs(v_ref), "converged": conv})
    return rows


def plan_entropy(run: Path) -> list[dict]:
    "H(P_ε)/log n of the plan (library budget) on the same batches, at several ε0: does the plan see a matching?"
    model, config, step = load_model(run)
    rows = []
    for b, x, out in batches(model, config):
        with torch.no_grad():
            ref, img = (out.z, torch.sigmoid(out.logits)) if config.target == "decoder" else (x, out.mu)
            for eps0 in EPS0S:
                _, info = gromov_monge_gap(ref, img, config.cost, eps0=eps0, warn_unconverged=False, return_info=True)
                rows.append({"run": run.name, "batch": b, "eps0": eps0,
                             "entropy": float(info.entropy) / float(np.log(ref.shape[0])),
                             "sharp_gap_positive": bool(info.distortion - info.energy > 0)})
    return rows


def table(rows: list[dict], entropy_rows: list[dict] | None = None) -> str:
    import pandas as pd
    frame = pd.DataFrame(rows)
    summary = frame.groupby("budget", sort=False).agg(
        batches=("cosine", "size"), cosine_min=("cosine", "min"), cosine_median=("cosine", "median"),
        value_error_max=("value_rel_error", "max"), converged=("converged", "mean")).reset_index()
    runs = sorted(frame.run.unique())
    return ("# Gradient honesty: the GMG gradient of a fixed budget vs a converged solve\n\n"
            f"Generated by `python tools/gradient_honesty.py` on {len(runs)} trained run(s) ({', '.join(runs)}), "
            f"{BATCHES} batches each: cosine between the gradients in the regularized network's parameters, relative "
            "error of the value, share of solves that converged within the budget.\n\n"
            + summary.to_markdown(index=False, floatfmt=".4f") + "\n"
            + (_entropy_table(entropy_rows) if entropy_rows else ""))


def _entropy_table(entropy_rows: list[dict]) -> str:
    import pandas as pd
    frame = pd.DataFrame(entropy_rows)
    summary = frame.groupby("eps0", sort=False).agg(
        batches=("entropy", "size"), entropy_median=("entropy", "median"), entropy_max=("entropy", "max"),
        sharp_gap_positive=("sharp_gap_positive", "mean")).reset_index()
    return ("\nThe plan on the same batches at several ε0 (library budget 50 × 100): its entropy H(P_ε)/log n (1: a "
            "permutation, 2: the product coupling) and the share of batches where DST − E(P_ε) > 0 (the plan found a "
            "matching at least as good as the map's own, rather than a blur of it).\n\n"
            + summary.to_markdown(index=False, floatfmt=".3f") + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    json_path, md_path = args.out / "gradient_honesty.json", args.out / "gradient_honesty.md"
    if args.check:
        saved = json.loads(json_path.read_text())
        ok = md_path.read_text() == table(saved["rows"], saved.get("entropy_rows"))
        print("gradient_honesty.md " + ("matches" if ok else "is stale: rerun the tool"))
        return 0 if ok else 1
    torch.set_num_threads(1)
    runs = args.runs or sorted(p for p in (ROOT / "results" / "runs").glob("*-gmg-*") if (p / "checkpoint.pt").is_file())
    if not runs:
        print("no trained GMG runs with checkpoints found (run the pipeline first: dvc repro)", file=sys.stderr)
        return 2
    rows = [r for run in runs for r in measure(run)]
    entropy_rows = [r for run in runs for r in plan_entropy(run)]
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"converged": CONVERGED, "rows": rows, "entropy_rows": entropy_rows}, indent=1) + "\n")
    md_path.write_text(table(rows, entropy_rows))
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

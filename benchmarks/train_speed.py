"""Training speed: steps per second at batch 64 for β-VAE alone and with each geometric regularizer.

Every configuration is measured in the same run, interleaved (rounds of a few steps each, round-robin), so
that the ratios against β-VAE are fair on a shared machine; the table reports the median over rounds.
The bf16 rows run the VAE's forward pass under `torch.autocast(dtype=torch.bfloat16)` (`TrainConfig.precision`);
their ratio is against the float32 β-VAE. Batches are rendered once beforehand (data loading is not part of a step here). All configurations start from
the same β-VAE trained for `--pretrain` steps: on a freshly initialized VAE the GW solver stops after a few
iterations (the identity coupling is already optimal), which would flatter GMG.

    python benchmarks/train_speed.py --device cpu --threads 2 --steps 60
    python benchmarks/train_speed.py --device cuda --steps 300
"""
from __future__ import annotations
import argparse, os, platform, statistics, time
from pathlib import Path
import numpy as np
import torch
from gmg.train import TrainConfig, train_step, _Window
from gmg.models import VAE

CONFIGS = {
    "β-VAE": dict(),
    "+ GMG (decoder, Cos)": dict(regularizer="gmg", target="decoder", cost="cosine", lam=1.0),
    "+ GMG (decoder, Cos), full solve 50/100": dict(regularizer="gmg", target="decoder", cost="cosine", lam=1.0,
                                                   gw_max_iter=50, sinkhorn_iter=100),
    "+ DST (decoder, Cos)": dict(regularizer="dst", target="decoder", cost="cosine", lam=1.0),
    "+ Jacobian (decoder, isometry)": dict(regularizer="jacobian", lam=1.0),
    "+ GMG (encoder, Cos)": dict(regularizer="gmg", target="encoder", cost="cosine", lam=1.0),
    # bfloat16 autocast of the VAE's forward pass (TrainConfig.precision); GMG itself stays float32
    "β-VAE, bf16 autocast": dict(precision="bfloat16"),
    "+ GMG (decoder, Cos), bf16 autocast": dict(regularizer="gmg", target="decoder", cost="cosine", lam=1.0,
                                               precision="bfloat16"),
}

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (steps split between them)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--pretrain", type=int, default=200, help="β-VAE steps before timing (shared start)")
    ap.add_argument("--only", default="", help="comma-separated substrings: time only the matching rows (and β-VAE)")
    ap.add_argument("--json", default="", help="also write the table's numbers here (README: tools/readme_tables.py)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    device = torch.device(args.device)
    from gmg import datasets
    ds = datasets.load("dsprites")
    rng = np.random.default_rng(0)
    batches = [ds.sample(args.batch, rng)[0].to(device) for _ in range(8)]

    torch.manual_seed(0)
    start = VAE(1).to(device)
    pre_cfg = TrainConfig(batch_size=args.batch, lr=5e-4)
    pre_opt = torch.optim.Adam(start.parameters(), lr=pre_cfg.lr)
    pre_gen = torch.Generator(device=device).manual_seed(0)
    for i in range(args.pretrain):
        train_step(pre_cfg, pre_cfg.regularizer_spec(), start, pre_opt, pre_gen,
                   ds.sample(args.batch, rng)[0].to(device), _Window(), False)

    runs = {}
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    for name, extra in CONFIGS.items():
        if wanted and name != "β-VAE" and not any(w in name for w in wanted):
            continue
        cfg = TrainConfig(batch_size=args.batch, **extra)
        model = VAE(1, cfg.latent_dim).to(device)
        model.load_state_dict(start.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator(device=device).manual_seed(1)
        runs[name] = (cfg, cfg.regularizer_spec(), model, opt, gen)

    def step(name, i):
        cfg, spec, model, opt, gen = runs[name]
        train_step(cfg, spec, model, opt, gen, batches[i % len(batches)], _Window(), False)

    for name in runs:
        for i in range(args.warmup):
            step(name, i)
    per_round = max(1, args.steps // args.rounds)
    rates = {name: [] for name in runs}
    for r in range(args.rounds):
        for name in runs:
            sync(device)
            t0 = time.perf_counter()
            for i in range(per_round):
                step(name, r * per_round + i)
            sync(device)
            rates[name].append(per_round / (time.perf_counter() - t0))
    # the ratio of each round (rows timed back to back share the machine's state), then its median over rounds
    ratios = {name: statistics.median(b / r for b, r in zip(rates["β-VAE"], rs)) for name, rs in rates.items()}
    print(f"device: {device_name(device)} ({args.device}); torch.set_num_threads({args.threads}); "
          f"batch {args.batch}; ε0 {TrainConfig.eps0}; GW {TrainConfig.gw_max_iter}×{TrainConfig.sinkhorn_iter} iterations; after {args.pretrain} β-VAE steps; {per_round * args.rounds} timed steps per row in {args.rounds} interleaved rounds; "
          f"torch {torch.__version__}\n")
    print("| configuration | steps/s (median) | time per step vs β-VAE (median of per-round ratios) |")
    print("|---|---:|---:|")
    for name, rs in rates.items():
        print(f"| {name} | {statistics.median(rs):.2f} | {ratios[name]:.3f}× |")
    if args.json:
        import json
        record = {"device": device_name(device), "device_type": args.device, "threads": args.threads,
                  "batch": args.batch, "eps0": TrainConfig.eps0,
                  "gw_budget": [TrainConfig.gw_max_iter, TrainConfig.sinkhorn_iter], "pretrain": args.pretrain,
                  "timed_steps_per_row": per_round * args.rounds, "rounds": args.rounds, "torch": torch.__version__,
                  "load_average_before": list(load_before),
                  "rows": [{"configuration": n, "steps_per_second": statistics.median(rs), "time_vs_base": ratios[n]}
                           for n, rs in rates.items()]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")

if __name__ == "__main__":
    main()

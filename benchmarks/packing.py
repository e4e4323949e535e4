"""Runs packed on one device: aggregate training steps/s of N training processes sharing it, N = 1, 2, 4, 8.

A 64×64 VAE at batch 64 is launch-bound on a modern GPU, so several trainings on one device can multiply its
throughput. This measures by how much: for each configuration (β-VAE, + GMG) and each N, N worker processes
(separate CUDA contexts, as the grid's packed tasks are) each load the data, build the model, pre-train and warm
up, then wait at a common start signal; each then times `--steps` training steps (`gmg.train.train_step`, the
pipeline's own step) and reports when it started and ended. Aggregate throughput = N × steps / (last end − first
start); "vs one run" divides it by the N = 1 rate. The best N is the packing factor for the profile's
`resources.yaml` (a GPU share of 1/N per training). On a CPU it runs too (a smoke test of the script; processes
then share the cores, so expect no gain beyond the number of cores).

    python benchmarks/packing.py --device cuda --procs 1,2,4,8 --steps 300 --out results/device/packing.json
    python benchmarks/packing.py --device cpu --procs 1,2 --steps 10 --pretrain 0     # smoke run
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

from train_speed import CONFIGS as TRAIN_SPEED_CONFIGS, device_name

# the two rows of benchmarks/train_speed.py that bound a grid's steps: the plain model and GMG
CONFIGS = {name: TRAIN_SPEED_CONFIGS[name] for name in ("β-VAE", "+ GMG (decoder, Cos)")}


def worker(args) -> None:
    "One training process: prepare, report ready, wait for the start signal, time the steps, report."
    import numpy as np
    import torch
    from gmg import datasets
    from gmg.models import VAE
    from gmg.train import TrainConfig, _Window, train_step
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    ds = datasets.load("dsprites")
    rng = np.random.default_rng(args.rank)
    batches = [ds.sample(args.batch, rng)[0].to(device) for _ in range(8)]
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=args.batch, **CONFIGS[args.config])
    model = VAE(1, cfg.latent_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(args.rank)
    plain = TrainConfig(batch_size=args.batch)
    # pre-train as β-VAE first: on a fresh VAE the GW solver stops after a few iterations, which would flatter GMG
    for i in range(args.pretrain):
        train_step(plain, plain.regularizer_spec(), model, opt, gen, batches[i % 8], _Window(), False)
    spec = cfg.regularizer_spec()
    for i in range(args.warmup):
        train_step(cfg, spec, model, opt, gen, batches[i % 8], _Window(), False)
    sync()
    print("ready", flush=True)
    while not os.path.exists(args.go):
        time.sleep(0.002)
    start = time.time()
    for i in range(args.steps):
        train_step(cfg, spec, model, opt, gen, batches[i % 8], _Window(), False)
    sync()
    print(json.dumps({"start": start, "end": time.time()}), flush=True)


def measure(config: str, n: int, args) -> dict:
    "Start `n` workers on the device, release them together, and return the aggregate and per-run rates."
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                        os.environ.get("PYTHONPATH")])))
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--rank", str(rank), "--config", config,
                                   "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
                                   "--pretrain", str(args.pretrain), "--threads", str(args.threads),
                                   "--batch", str(args.batch), "--go", str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for rank in range(n)]
        try:
            for p in procs:
                line = p.stdout.readline().strip()
                if line != "ready":
                    p.wait()
                    raise SystemExit(f"a worker ({config}, N = {n}) failed before the start:\n{p.stderr.read()[-3000:]}")
            go.touch()
            windows = []
            for p in procs:
                out, err = p.communicate()
                if p.returncode != 0:
                    raise SystemExit(f"a worker ({config}, N = {n}) failed:\n{err[-3000:]}")
                windows.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    span = max(w["end"] for w in windows) - min(w["start"] for w in windows)
    per_run = [args.steps / (w["end"] - w["start"]) for w in windows]
    return {"configuration": config, "runs": n, "aggregate_steps_per_s": n * args.steps / span,
            "per_run_steps_per_s": sum(per_run) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    ap.add_argument("--procs", default="1,2,4,8", help="comma-separated numbers of processes sharing the device")
    ap.add_argument("--steps", type=int, default=300, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pretrain", type=int, default=200, help="β-VAE steps before the timed configuration")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads of each process")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", type=Path, help="write the table's rows as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--config", default="β-VAE", choices=list(CONFIGS), help=argparse.SUPPRESS)
    ap.add_argument("--go", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    counts = [int(n) for n in args.procs.split(",")]
    if any(n < 1 for n in counts) or args.steps < 1:
        ap.error("--procs must list positive numbers and --steps be positive")
    rows = []
    for config in CONFIGS:
        for n in counts:
            rows.append(measure(config, n, args))
            print(f"{config}, {n} run(s): {rows[-1]['aggregate_steps_per_s']:.1f} steps/s in all", flush=True)
    import torch
    device = device_name(torch.device(args.device))
    print(f"\ndevice: {device} ({args.device}); torch {torch.__version__}; batch {args.batch}; {args.steps} timed steps "
          f"per process after {args.pretrain} β-VAE steps; torch.set_num_threads({args.threads}) per process\n")
    print("| configuration | runs on the device | aggregate steps/s | steps/s per run | aggregate vs one run |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        single = [s["aggregate_steps_per_s"] for s in rows if s["configuration"] == r["configuration"] and s["runs"] == 1]
        r["vs_one_run"] = r["aggregate_steps_per_s"] / single[0] if single else None
        ratio = f"{r['vs_one_run']:.2f}×" if single else "(no N = 1 row)"
        print(f"| {r['configuration']} | {r['runs']} | {r['aggregate_steps_per_s']:.1f} | "
              f"{r['per_run_steps_per_s']:.1f} | {ratio} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": device, "torch": torch.__version__, "steps": args.steps,
                                        "threads_per_process": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

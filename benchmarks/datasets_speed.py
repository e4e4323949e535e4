"""Rendering speed of the procedural datasets: images/s for random batches of 64, after the one-off cache.

Each dataset runs in its own subprocess so that its peak resident memory (VmHWM) is its own. Per dataset:
  cold   images/s of random batches on a fresh renderer (no cache yet: every geometry is ray-cast/rasterised) --
         the baseline, measured in the same run;
  build  the one-off cost: render every geometry once (or, with --cache-dir holding a complete cache, load it);
  warm   images/s of random batches (sample_factors + render) after the cache, and its ratio to cold.
Prints a Markdown table.   Usage: python benchmarks/datasets_speed.py [--threads 1] [--batches 200] [--cache-dir DIR]
"""
import argparse
import json
import subprocess
import sys
import time

BATCH = 64


def peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(name: str, threads: int, batches: int, cold_batches: int, cache_dir: str | None) -> dict:
    import numpy as np
    import torch

    from gmg import datasets as D

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)

    cold = D.load(name)  # no cache: every batch renders its geometry from scratch
    cold.render(cold.sample_factors(4, rng))  # warm up torch kernels, not the cache
    D._dsprite_patches.cache_clear()  # dSprites keeps its 720 patches module-wide: forget them too
    cold = D.load(name)
    t0 = time.perf_counter()
    for _ in range(cold_batches):
        cold.render(cold.sample_factors(BATCH, rng), rng)
    cold_ips = cold_batches * BATCH / (time.perf_counter() - t0)
    del cold

    D._dsprite_patches.cache_clear()
    t0 = time.perf_counter()
    ds = D.load(name, cache_dir=cache_dir)
    loaded = ds.cache_complete
    if not loaded:
        ds.build_cache()
    build_s = time.perf_counter() - t0

    ds.render(ds.sample_factors(BATCH, rng), rng)
    t0 = time.perf_counter()
    for _ in range(batches):
        x = ds.render(ds.sample_factors(BATCH, rng), rng)
    warm_ips = batches * BATCH / (time.perf_counter() - t0)
    assert x.shape[0] == BATCH
    return dict(name=ds.name, cold=cold_ips, build_s=build_s, loaded=loaded, warm=warm_ips, rss=peak_rss_mb())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--batches", type=int, default=200, help="warm batches of 64 per dataset")
    p.add_argument("--cold-batches", type=int, default=2, help="cold batches of 64 per dataset (slow)")
    p.add_argument("--cache-dir", default=None, help="read complete caches from here instead of building them")
    p.add_argument("--datasets", default="dsprites,shapes3d,smallnorb,cars3d")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one dataset, print JSON
    a = p.parse_args()
    if a.one:
        print(json.dumps(measure(a.one, a.threads, a.batches, a.cold_batches, a.cache_dir)))
        return
    rows = []
    for name in a.datasets.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--threads", str(a.threads), "--batches", str(a.batches),
               "--cold-batches", str(a.cold_batches)] + (["--cache-dir", a.cache_dir] if a.cache_dir else [])
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))
    print(f"torch threads: {a.threads}; batch {BATCH}; warm = mean over {a.batches} random batches "
          f"(sample_factors + render); cold = {a.cold_batches} batches on a fresh renderer\n")
    print("| dataset | cold images/s (no cache) | one-off cache | warm images/s | warm / cold | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cache = f"{r['build_s']:.1f} s ({'loaded' if r['loaded'] else 'built'})"
        print(f"| {r['name']} | {r['cold']:,.0f} | {cache} | {r['warm']:,.0f} | {r['warm'] / r['cold']:,.0f}x | {r['rss']:.0f} |")


if __name__ == "__main__":
    main()

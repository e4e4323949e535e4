"""Re-execute the library notebooks and save them with their outputs, so that they read as the documentation.

    python tools/refresh_notebooks.py                      # index and every numbered notebook of nbs/, in order
    python tools/refresh_notebooks.py 02_gap 13_metrics    # some of them (names with or without .ipynb)
    python tools/refresh_notebooks.py --check              # execute, compare, write nothing: exit 1 if stale

Each notebook runs top to bottom in a fresh Jupyter kernel (nbclient, as `jupyter nbconvert --execute` and
papermill run notebooks), with `nbs/` as the working directory, as a reader's "Restart kernel and run all" would.
Nothing is written unless every cell succeeds, and a notebook that someone saved while it ran is left as they
saved it. The written notebook then goes through `nbdev-clean` (the project keeps outputs, `clear_all = false`;
execution counts and volatile metadata go), so a refreshed notebook is also a clean one.

Outputs are meant to be reproducible: a second refresh on the same machine leaves `git diff` empty. The kernels
get fixed thread counts (`--threads`, 1 by default: torch's reductions split work by thread, so the last digits
of a printed number depend on it) and a fixed hash seed; each cell's printed text is one stdout and one stderr
output, however the kernel chunked it, and the kernel's process id is dropped from warnings' file names. The
notebooks seed their own random draws and print no timings; matplotlib's PNG files carry no date.

`nbs/experiments/` is left alone: those notebooks are papermill templates; DVC executes them with parameters and
keeps the executed copies among its outputs (`results/`).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
KERNEL_PID = re.compile(r"ipykernel_\d+")


def library_notebooks() -> list[Path]:
    "index first, then the numbered notebooks in nbdev's (file-name) order: the reader's path."
    numbered = sorted(p for p in NBS.glob("*.ipynb") if p.name != "index.ipynb" and not p.name.startswith(("_", ".")))
    return [NBS / "index.ipynb", *numbered]


def select(names: list[str]) -> list[Path]:
    every = library_notebooks()
    if not names:
        return every
    by_stem = {p.stem: p for p in every}
    unknown = [n for n in names if Path(n).stem not in by_stem]
    if unknown:
        raise SystemExit(f"not a library notebook of nbs/: {', '.join(unknown)} "
                         f"(choose from {', '.join(by_stem)})")
    return [by_stem[Path(n).stem] for n in names]


def kernel_env(threads: int) -> dict[str, str]:
    "The environment every kernel starts with (inherited by the kernel process)."
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONHASHSEED"] = "0"
    env.pop("MPLBACKEND", None)   # a headless backend set for tests would hide the figures: keep the inline one
    return env


def execute(source: bytes, timeout: int) -> nbformat.NotebookNode:
    "The notebook `source` (a file's bytes), executed in a fresh kernel with cwd nbs/; raises CellExecutionError."
    nb = nbformat.reads(source.decode("utf-8"), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False, record_timing=False,
                            coalesce_streams=True, resources={"metadata": {"path": str(NBS)}})
    client.execute()
    return without_kernel_pid(nb)


def without_kernel_pid(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop the kernel's process id from printed text (a warning names its cell `/tmp/ipykernel_<pid>/<hash>.py`).

    With `coalesce_streams` above (one stdout and one stderr output per cell, however the kernel happened to
    chunk them), this is what keeps a warning's output the same from one refresh to the next."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = KERNEL_PID.sub("ipykernel", out["text"])
    return nb


def clean(path: Path) -> None:
    "nbdev's own cleaning, with the project's settings (outputs stay)."
    subprocess.run(["nbdev-clean", "--fname", str(path)], cwd=ROOT, check=True)


def refresh_one(path: Path, timeout: int, check: bool) -> tuple[Path, float, str]:
    "Execute one notebook; write and clean it (or, with `check`, compare it). Returns (path, seconds, status)."
    start, original = time.perf_counter(), path.read_bytes()
    try:
        nb = execute(original, timeout)
    except CellExecutionError as e:
        return path, time.perf_counter() - start, f"FAILED, nothing written:\n{e}"
    if path.read_bytes() != original:   # someone saved it meanwhile: writing would lose their edit
        return path, time.perf_counter() - start, "CHANGED while it ran, not written: run it again"
    if not check:
        nbformat.write(nb, path)
        clean(path)
        return path, time.perf_counter() - start, "refreshed"
    with tempfile.TemporaryDirectory() as tmp:   # the refreshed file, exactly as it would be written
        fresh = Path(tmp) / path.name
        nbformat.write(nb, fresh)
        clean(fresh)
        same = fresh.read_bytes() == path.read_bytes()
    return path, time.perf_counter() - start, "up to date" if same else "STALE: a refresh would change it"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("notebooks", nargs="*", help="notebook names (default: all library notebooks and index)")
    ap.add_argument("--check", action="store_true", help="execute and compare with the stored outputs; write nothing")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks executed at the same time (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="threads per kernel (default 1, for reproducible digits)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        ap.error("--jobs and --threads must be at least 1")
    paths = select(args.notebooks)
    env = kernel_env(args.threads)
    os.environ.clear()
    os.environ.update(env)   # kernels inherit this process's environment

    start, failed = time.perf_counter(), 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for path, seconds, status in pool.map(lambda p: refresh_one(p, args.timeout, args.check), paths):
            print(f"{path.relative_to(ROOT)}: {status} ({seconds:.0f} s)", flush=True)
            failed += status != "refreshed" and status != "up to date"
    print(f"{len(paths)} notebooks, {failed} not refreshed or stale, {time.perf_counter() - start:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

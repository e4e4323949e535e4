#!/usr/bin/env bash
# The GPU checks as one short script (a few minutes on one H100/H200): gmg on CUDA tensors against the CPU
# (tests/test_cuda.py), one GMG value+gradient on the GPU (gmg_speed; POT columns where POT is installed),
# training steps/s with each regularizer (train_speed) and runs packed on the GPU (packing: aggregate steps/s of
# 1, 2, 4, 8 trainings sharing it). Run from the repository root on a machine with CUDA and torch; tables and
# logs go to ${OUT:-results/device}. gmg's own imports need numpy, scipy, scikit-learn, h5py, matplotlib, dvclive,
# tqdm: on a bare machine, bring them as wheels
# (benchmarks/fetch_device_wheels.sh lists and fetches what the H200 image of the last run lacked).
set -uo pipefail
out=${OUT:-results/device}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/device.txt" || exit 1
import importlib, torch
assert torch.cuda.is_available(), "no CUDA device"
print("torch", torch.__version__, "on", torch.cuda.get_device_name())
missing = [m for m in ("numpy", "scipy", "sklearn", "h5py", "matplotlib", "dvclive", "tqdm", "pytest", "ot")
           if importlib.util.find_spec(m) is None]
print("missing modules:", missing or "none")
PY
status=0
python3 -m pytest -q -rs tests/test_cuda.py 2>&1 | tee "$out/test_cuda.txt" || status=1
python3 benchmarks/gmg_speed.py --device cuda --sizes 64,256,1024 --repeats 15 --pot-max-n 256 2>&1 | tee "$out/gmg_speed_cuda.md" || status=1
python3 benchmarks/sinkhorn_cuda.py 2>&1 | tee "$out/sinkhorn_cuda.md" || status=1
python3 benchmarks/train_speed.py --device cuda --steps 300 2>&1 | tee "$out/train_speed_cuda.md" || status=1
# runs packed on the GPU: aggregate steps/s of 1, 2, 4, 8 training processes (the grid's GPU share per training)
python3 benchmarks/packing.py --device cuda --procs 1,2,4,8 --steps 300 --out "$out/packing.json" 2>&1 \
    | tee "$out/packing.md" || status=1
exit $status

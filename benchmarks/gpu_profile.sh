#!/usr/bin/env bash
# The gpu profile end to end on a GPU machine, from a copy of this repository: install what is missing, then
# benchmarks/profile_run.py (device check, fresh copy, pilot, `python -m gmg.grid`, results collected).
#   OUT=results/gpu-run bash benchmarks/gpu_profile.sh                 # pilot + the whole gpu profile
#   OUT=results/gpu-pilot bash benchmarks/gpu_profile.sh --pilot-only  # the pilot alone (1-2 min)
#   PROFILE=micro OUT=/tmp/micro bash benchmarks/gpu_profile.sh        # the CPU rehearsal (tests/test_profile_run.py)
# Without a package index, bring the wheels the machine lacks in .whl/ (benchmarks/fetch_device_wheels.sh; for the
# pipeline also papermill, ray and their dependencies): they are installed with --no-index. SKIP_INSTALL=1 skips
# installing (an environment that already has the project's dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results/gpu-run}
profile=${PROFILE:-gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg DVC_NO_ANALYTICS=1
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --find-links .whl -e ".[dev]" 2>&1 | tail -3
    else
        python3 -m pip install -q -e ".[dev]" 2>&1 | tail -3
    fi
fi
for tool in dvc papermill ray; do
    command -v "$tool" >/dev/null || { echo "gpu_profile.sh: '$tool' is not installed (pip install -e \".[dev]\")" >&2; exit 2; }
done
{ command -v nvidia-smi >/dev/null && nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } \
    > "$out/machine.txt" 2>&1 || true
python3 benchmarks/profile_run.py --profile "$profile" --out "$out" "$@"

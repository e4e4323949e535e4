"""The prepared GPU script (`benchmarks/gpu_profile.sh` → `benchmarks/profile_run.py`), rehearsed on the CPU.

With `PROFILE=micro` it does what it does on a GPU machine with the gpu profile: a fresh copy of the repository, a
pilot of packed trainings (`benchmarks/packing.py`), the pipeline through the grid executor, and everything small
collected into one folder with a manifest. The gpu profile itself must refuse to start where there is no CUDA.
"""
from __future__ import annotations
import json, os, subprocess
from pathlib import Path
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("ray")


def _script(out: Path, profile: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SKIP_INSTALL="1", PROFILE=profile, OUT=str(out), OMP_NUM_THREADS="1")
    env.pop("DVC_ROOT", None)
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_profile.sh"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=3600)


def test_micro_rehearsal_runs_the_pipeline_and_brings_back_its_results(tmp_path):
    out = tmp_path / "out"
    done = _script(out, "micro", "--workdir", str(tmp_path / "copy"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + (out / "grid.txt").read_text()[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"] == "micro" and manifest["grid_exit_status"] == 0 and manifest["trainings"] == 4
    assert {"setup_s", "pilot_s", "pipeline_s"} <= set(manifest["timings"])
    pilot = manifest["pilot"]
    assert pilot["packed_runs"] == min(4, os.cpu_count()) and pilot["projected_training_s_all_gmg"] > 0
    lock = yaml.safe_load((out / "dvc.lock").read_text())["stages"]
    runs = [name.split("@")[1] for name in lock if name.startswith("train@")]
    assert len(runs) == 4 and {f"evaluate@{r}" for r in runs} <= set(lock) and "report" in lock
    for run in runs:      # every training and evaluation came back with its numbers
        assert json.loads((out / "results" / "eval" / run / "metrics.json").read_text())["dci_disentanglement"] >= 0
        assert (out / "results" / "runs" / run / "metrics.json").is_file()
    headline = json.loads((out / "results" / "report" / "headline.json").read_text())
    assert any(k.endswith("/verdict") for k in headline)
    assert yaml.safe_load((out / "params.yaml").read_text())["profile"] == "micro"
    # the copy's `dvc status` is clean: what came back is what DVC recorded
    status = subprocess.run(["dvc", "status", "dvc.yaml", "--json"], cwd=tmp_path / "copy", capture_output=True, text=True)
    assert status.returncode == 0 and json.loads(status.stdout or "{}") == {}, status.stdout + status.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no CUDA")
def test_gpu_profile_refuses_a_machine_without_cuda(tmp_path):
    done = _script(tmp_path / "out", "gpu")
    assert done.returncode != 0 and "torch sees no CUDA device" in done.stderr, done.stderr[-2000:]


def test_unknown_profile_is_refused(tmp_path):
    done = _script(tmp_path / "out", "laptop")
    assert done.returncode != 0 and "unknown profile 'laptop'" in done.stderr, done.stderr[-2000:]

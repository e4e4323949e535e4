"""`python -m gmg.grid` end to end, on a simulated two-node Ray cluster on the loopback address.

Two throw-away copies of the repository (as in tests/test_pipeline.py) run the same micro grid — one dataset, two
regularizers, two seeds, 60 training steps so that a training can be interrupted — one with a serial `dvc repro`
(the reference, started first and run alongside), the other with the grid on a `ray.cluster_utils.Cluster` of two
one-CPU nodes that this module starts and stops. While the grid runs, the Ray worker of one training is killed
(SIGKILL, by its PID) once the training has written a checkpoint: the driver must retry the stage and the training
resume from that checkpoint. Afterwards DVC must find nothing to do, and every output of the trainings and
evaluations must be byte for byte the serial run's (the resumed one included), as must every stage's `dvc.lock` entry.
"""
from __future__ import annotations
import json, os, re, shutil, signal, subprocess, sys, threading, time
from pathlib import Path
import pytest
import yaml

from test_pipeline import MICRO, _copy_repository, _merge, _sh

ray = pytest.importorskip("ray")

REGULARIZERS, SEEDS = ("none", "gmg"), (0, 1)
RUNS = [f"dsprites-beta_vae-{r}-{s}" for r in REGULARIZERS for s in SEEDS]
VICTIM = "dsprites-beta_vae-gmg-1"          # the training whose worker is killed
GRID = {**MICRO, "train": {**MICRO["train"], "regularizers": list(REGULARIZERS), "seeds": list(SEEDS)}}
TOY = {"points": 16, "steps": 3, "eval_points": 32, "seeds": "1", "gw_iter": 2}
LONGER = {"steps": 60, "checkpoint_every": 5}   # micro trains 6 steps: too short to be interrupted reliably


def _make_copy(dest: Path) -> tuple[Path, dict]:
    "A micro-profile copy of the repository, its own git repository, with no dvc.lock yet."
    dest.mkdir(parents=True)
    _copy_repository(dest)
    # results/ is DVC's: outputs of a pipeline running in the checkout meanwhile are not part of a clone
    shutil.rmtree(dest / "results", ignore_errors=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(_merge(params, {**GRID, "toy": TOY}), sort_keys=False))
    train_yaml = dest / "profiles" / "micro" / "train.yaml"
    train_yaml.write_text(yaml.safe_dump({**yaml.safe_load(train_yaml.read_text()), **LONGER}))
    (dest / "dvc.lock").unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(dest), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               DVC_NO_ANALYTICS="1", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",   # Ray on 127.0.0.1, not the LAN address
               GIT_AUTHOR_NAME="gmg test", GIT_AUTHOR_EMAIL="test@gmg.local", GIT_COMMITTER_NAME="gmg test",
               GIT_COMMITTER_EMAIL="test@gmg.local")
    env.pop("DVC_ROOT", None)
    for args in (["git", "init", "-q"], ["dvc", "config", "core.analytics", "false"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "micro grid"]):
        _sh(args, dest, env)
    return dest, env


# a safety net against a hung process, far above any plausible time: a slow machine must never fail a test
HUNG = 6 * 3600

def _grid(repo: Path, env: dict, *args: str, timeout: int = HUNG) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gmg.grid", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _kill_when_checkpointed(repo: Path, record: dict, stop: threading.Event) -> None:
    "Kill the Ray worker of VICTIM's training (its PID is in the run lock) once a checkpoint exists."
    import torch
    lock = repo / "results" / "grid-logs" / f"train@{VICTIM}.lock"
    checkpoint = repo / "results" / "runs" / VICTIM / "checkpoint.pt"
    while not stop.is_set():
        try:
            step = torch.load(checkpoint, weights_only=True)["step"] if checkpoint.exists() else 0
            owner = json.loads(lock.read_text())
        except Exception:   # not there yet, or caught mid-rename
            time.sleep(0.02)
            continue
        if 0 < step < LONGER["steps"]:
            os.kill(owner["worker_pid"], signal.SIGKILL)
            record.update(step=step, worker_pid=owner["worker_pid"])
            return
        time.sleep(0.02)


def _left_behind(folder: Path, session_dir: str) -> list[str]:
    "Live processes working in `folder` (stages, supervisors, kernels) or belonging to the Ray session."
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            zombie = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):   # not a process, gone meanwhile, or not ours to read
            continue
        if not zombie and proc.name != str(os.getpid()) and (cwd.startswith(str(folder)) or session_dir in args):
            found.append(f"{proc.name} {cwd}: {args[:200]}")
    return found


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("grid")
    serial, serial_env = _make_copy(base / "serial")
    grid, env = _make_copy(base / "grid")
    reference = subprocess.Popen(["dvc", "repro"], cwd=serial, env=serial_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    out = {"serial": serial, "grid": grid, "env": env}
    # the stages run in the environment of the cluster's workers, i.e. of this process: make it the serial run's
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    from ray.cluster_utils import Cluster
    cluster = None
    try:
        node = dict(num_cpus=1, object_store_memory=80 * 2**20)
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False,
                                                                "node_ip_address": "127.0.0.1"})
        cluster.add_node(**node, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        out["address"], session_dir = cluster.address, cluster.head_node.get_session_dir_path()
        out["status_before"] = json.loads(_sh(["dvc", "status", "dvc.yaml", "--json"], grid, env).stdout)
        out["dry_run"] = _grid(grid, env, "--dry-run", "--address", cluster.address)
        # a profile asking for a GPU the cluster does not have: refused before anything runs
        (grid / "profiles" / "half-gpu").mkdir()
        (grid / "profiles" / "half-gpu" / "resources.yaml").write_text("stages:\n  train: {cpus: 1, gpus: 0.5}\n")
        out["too_big"] = _grid(grid, env, "--address", cluster.address, "--profile", "half-gpu")
        out["logs_after_refusal"] = sorted((grid / "results" / "grid-logs").glob("*.log"))
        killed, stop = {}, threading.Event()
        killer = threading.Thread(target=_kill_when_checkpointed, args=(grid, killed, stop), daemon=True)
        killer.start()
        out["run"] = _grid(grid, env, "--address", cluster.address)
        stop.set()
        killer.join()
        out["killed"] = killed
        out["again"] = _grid(grid, env, "--address", cluster.address)
    except BaseException:
        reference.kill()
        raise
    finally:
        if cluster is not None:
            cluster.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    reference_out = reference.communicate(timeout=HUNG)[0]
    assert reference.returncode == 0, reference_out[-4000:]
    time.sleep(2)   # processes ended by the shutdown may take a moment to go
    out["left_behind"] = _left_behind(base, session_dir)
    out["repro"] = _sh(["dvc", "repro"], grid, env)
    out["status_after"] = json.loads(_sh(["dvc", "status", "dvc.yaml", "--json"], grid, env).stdout)
    return out


def _table(stdout: str) -> dict[str, list[str]]:
    "The final table of `python -m gmg.grid`: stage -> [node, wall, status, attempts]."
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\S+@\S+|datasets|toy|report)\s+(\S+ \(\w+\)|-)\s+(\S+ s|-)\s+(.+?)\s+(\d+)$", line)
        if m:
            rows[m.group(1)] = [m.group(2), m.group(3), m.group(4), m.group(5)]
    return rows


def test_dry_run_lists_what_dvc_status_reports(grid_run):
    dry = grid_run["dry_run"]
    assert dry.returncode == 0, dry.stderr
    planned = {line.split()[0] for line in dry.stdout.splitlines()[2:] if line.split()[1:2] == ["run"]}
    assert planned == set(grid_run["status_before"]), (dry.stdout, grid_run["status_before"])


def test_grid_runs_every_stage_on_both_nodes(grid_run):
    run = grid_run["run"]
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    table = _table(run.stdout)
    expected = {"datasets", "toy", "report"} | {f"{s}@{r}" for s in ("train", "evaluate") for r in RUNS}
    assert set(table) == expected, run.stdout
    assert all(row[2] == "done" for row in table.values()), run.stdout
    assert len({row[0] for row in table.values()}) == 2, run.stdout   # stages ran on both nodes


def test_dvc_finds_nothing_to_do_after_the_grid(grid_run):
    assert grid_run["status_after"] == {}, grid_run["status_after"]
    assert "Running stage" not in grid_run["repro"].stdout, grid_run["repro"].stdout
    again = grid_run["again"]
    assert again.returncode == 0 and "Nothing to run" in again.stdout, again.stdout + again.stderr


def test_killed_worker_is_retried_and_resumes(grid_run):
    killed, run = grid_run["killed"], grid_run["run"]
    assert killed, "the victim's training was never caught between two checkpoints"
    assert _table(run.stdout)[f"train@{VICTIM}"][2:] == ["done", "2"], run.stdout
    log = (grid_run["grid"] / "results" / "grid-logs" / f"train@{VICTIM}.log").read_text()
    assert "Ray worker of this attempt is gone" in log and "attempt 2 of" in log, log[-3000:]
    resumed = re.findall(r"resuming \S+ from step (\d+)", log)
    assert resumed and int(resumed[-1]) >= killed["step"], log[-3000:]


def test_outputs_equal_a_serial_dvc_repro(grid_run):
    """Every file of every training and evaluation (the killed-and-resumed one included) is the serial `dvc repro`'s,
    byte for byte, and so is every stage's `dvc.lock` entry (datasets, toy and report too: no timings, no
    temporary names, no leftovers of a killed writer in any output)."""
    serial, grid = grid_run["serial"], grid_run["grid"]
    for run in RUNS:
        for folder in (Path("results/runs") / run, Path("results/eval") / run):
            files = sorted(p.relative_to(serial / folder) for p in (serial / folder).rglob("*") if p.is_file())
            assert files == sorted(p.relative_to(grid / folder) for p in (grid / folder).rglob("*") if p.is_file())
            differ = [str(folder / f) for f in files if (serial / folder / f).read_bytes() != (grid / folder / f).read_bytes()]
            assert not differ, f"not byte-identical to the serial run: {differ}"
    ours = yaml.safe_load((grid / "dvc.lock").read_text())["stages"]
    theirs = yaml.safe_load((serial / "dvc.lock").read_text())["stages"]
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert ours[name] == theirs[name], name


def test_bad_input_is_refused_before_anything_runs(grid_run):
    too_big = grid_run["too_big"]
    assert too_big.returncode == 2 and "largest node has 1 CPUs and 0 GPUs: train asks 1 CPU, 0.5 GPU" in too_big.stderr
    assert grid_run["logs_after_refusal"] == []
    grid, env = grid_run["grid"], grid_run["env"]
    for args, message in [(["no_such_stage"], "unknown target 'no_such_stage'"),
                          (["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
                          (["--profile", "laptop"], "unknown profile 'laptop'")]:
        run = _grid(grid, env, *args)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)


def test_no_process_left_behind(grid_run):
    assert grid_run["left_behind"] == [], grid_run["left_behind"]

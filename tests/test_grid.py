"""`python -m gmg.grid` end to end, on a simulated two-node Ray cluster on the loopback address.

Two throw-away copies of the repository (as in tests/test_pipeline.py) run the same micro grid — one dataset, two
regularizers, two seeds, 60 training steps so that a training can be interrupted — one with a serial `dvc repro`
(the reference, run alongside), the other with the grid on a `ray.cluster_utils.Cluster` of two one-CPU nodes that
this module starts and stops (before the reference starts: a start-up competes with nothing of the test's own).
While the grid runs, the Ray worker of one training is killed (SIGKILL, by its PID) once the training has written a
checkpoint: the driver must retry the stage and the training resume from that checkpoint. Afterwards DVC must find
nothing to do, and every output of the trainings and evaluations must be byte for byte the serial run's (the resumed
one included), as must every stage's `dvc.lock` entry.
While the grid runs, a second grid and a `dvc repro` on the same repository are refused (one writer per repository).

The quick tests first need no cluster: bad input refused in one line with exit status 2, the repository lock of a
killed holder taken over at once, the DVC internals the grid relies on, and the grid's Ray start-up while busy loops
occupy every core (the cluster is started with the same settings, and retried the same way).
"""
from __future__ import annotations
import contextlib, importlib.util, inspect, json, os, re, shutil, signal, subprocess, sys, textwrap, threading, time
from pathlib import Path
import pytest
import yaml

from test_pipeline import MICRO, ROOT, _copy_repository, _merge, _sh

ray = pytest.importorskip("ray")
from gmg.grid import RAY_START_ATTEMPTS, quick_ray_imports, ray_node_settings, start_with_retries   # noqa: E402

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


def _tiny_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1", DVC_NO_ANALYTICS="1")
    env.pop("DVC_ROOT", None)
    return env


@pytest.fixture
def tiny(tmp_path):
    "A two-stage DVC repository (no git) with a cpu profile: enough for what the grid does before Ray starts."
    repo = tmp_path / "tiny"
    (repo / "profiles" / "cpu").mkdir(parents=True)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "make": {"cmd": "echo a > a.txt", "outs": ["a.txt"]},
        "copy": {"cmd": "cp a.txt b.txt", "deps": ["a.txt"], "outs": ["b.txt"]}}}))
    _sh(["dvc", "init", "--no-scm", "-q"], repo, _tiny_env())
    return repo


@pytest.mark.parametrize("resources, folder, args, message", [
    pytest.param("stages:\n  make: {cpus: 1\n", "tiny", [], "resources.yaml: not valid YAML at line 3, column 1",
                 id="resources-yaml-syntax-error"),
    pytest.param("- make: {cpus: 1}\n", "tiny", [],
                 "resources.yaml: expected a mapping with default, stages, max_retries at the top level, got a list",
                 id="resources-top-level-list"),
    pytest.param("stages:\n  trian: {cpus: 1}\n", "tiny", [],
                 "resources.yaml: unknown stage(s) trian under stages: the stages of dvc.yaml are copy, make",
                 id="resources-unknown-stage"),
    pytest.param(None, "empty", [], "has no dvc.yaml: run the grid in the root of the DVC repository", id="empty-folder"),
    pytest.param(None, "tiny", ["--root", "/nonexistent/gmg-grid"], "--root /nonexistent/gmg-grid: no such directory",
                 id="root-does-not-exist"),
])
def test_bad_input_is_one_line_and_exit_status_2(tiny, tmp_path, resources, folder, args, message):
    "Refused before anything runs (not even Ray): one line on stderr; the traceback only with --debug."
    if resources is not None:
        (tiny / "profiles" / "cpu" / "resources.yaml").write_text(resources)
    cwd = tiny if folder == "tiny" else tmp_path / folder
    cwd.mkdir(exist_ok=True)
    run = _grid(cwd, _tiny_env(), *args)
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gmg.grid: error: ") and message in lines[0], run.stderr
    debug = _grid(cwd, _tiny_env(), *args, "--debug")
    assert debug.returncode == 2 and debug.stderr.startswith("Traceback") and message in debug.stderr.splitlines()[-1]


def test_the_lock_of_a_killed_holder_is_taken_over_at_once(tiny):
    "DVC's repository lock: held, the grid is refused naming the holder; its holder killed (SIGKILL), no obstacle."
    env = _tiny_env()
    holder = subprocess.Popen([sys.executable, "-c", "import time; from dvc.repo import Repo; Repo('.').lock.lock(); "
                               "print('held', flush=True); time.sleep(3600)"], cwd=tiny, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = _grid(tiny, env, "--dry-run")
        assert refused.returncode == 2 and f"is in use: pid {holder.pid} (python -c import time;" in refused.stderr, \
            refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    finally:
        holder.kill()
        holder.wait()
    assert (tiny / ".dvc" / "tmp" / "lock").read_text().strip() == str(holder.pid)   # the dead holder's lock file
    run = _grid(tiny, env, "--dry-run")
    assert run.returncode == 0 and {"make", "copy"} <= {line.split()[0] for line in run.stdout.splitlines()}, \
        run.stdout + run.stderr
    assert (tiny / ".dvc" / "tmp" / "lock").read_text().strip() != str(holder.pid)


SLEEP = 3607   # the stage command's sleep: a number no other process here sleeps for
STOPPED_WITHIN = 900   # seconds: a clean-up takes ~10 s; unfixed, the SIGINT case would sleep out the stage's hour


def _stage_sleeping(repo: Path) -> bool:
    return any(f"sleep {SLEEP}" in line for line in _left_behind(repo, "\0"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_background_grid_stops_on_sigint_and_sigterm(tiny, sig):
    """Started as a shell script starts a background command (`nohup python -m gmg.grid &`: SIGINT ignored, inherited)
    and signalled in the middle of a stage: the stage's command, its supervisor and Ray end, the grid says
    "interrupted" and exits with 128 + the signal's number, the stage's output is not written, and the next run finds
    the repository free (before the fix, SIGINT did nothing and SIGTERM skipped the clean-up)."""
    (tiny / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "make": {"cmd": f"sleep {SLEEP} && echo a > a.txt", "outs": ["a.txt"]}}}))
    env = _tiny_env()
    with open(tiny.parent / "grid.err", "w+") as stderr:
        run = subprocess.Popen([sys.executable, "-m", "gmg.grid", "--jobs", "1"], cwd=tiny, env=env,
                               stdout=subprocess.DEVNULL, stderr=stderr,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            while run.poll() is None and not _stage_sleeping(tiny):
                time.sleep(0.2)
            assert run.poll() is None, "the grid ended before its stage ran"
            run.send_signal(sig)
            code = run.wait(timeout=STOPPED_WITHIN)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        stderr.seek(0)
        err = stderr.read()
    assert code == 128 + sig and "gmg.grid: interrupted" in err, (code, err[-3000:])
    for _ in range(300):   # the supervisor ends the command once it sees its Ray worker gone: allow it a moment
        if not _left_behind(tiny, "\0"):
            break
        time.sleep(0.2)
    assert _left_behind(tiny, "\0") == []
    assert not (tiny / "a.txt").exists()
    dry = _grid(tiny, env, "--dry-run")
    assert dry.returncode == 0 and "make" in dry.stdout, dry.stdout + dry.stderr


def test_dvc_internals_the_grid_relies_on(tiny, monkeypatch):
    """The list in nbs/15_grid.ipynb ("The DVC internals the grid relies on"): names, the parameters the grid passes,
    the graph's type and direction, the lock's nesting and its file. A failure here means DVC changed one of them."""
    import networkx as nx
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo
    from dvc.stage import Stage
    assert {"ignore_remove", "force"} <= set(inspect.signature(Stage.remove_outs).parameters)
    assert {"target", "force"} <= set(inspect.signature(Repo.commit).parameters)
    assert issubclass(LockError, Exception)
    monkeypatch.chdir(tiny)
    repo = Repo(str(tiny))
    try:
        stages = {s.addressing: s for s in repo.index.stages}
        assert set(stages) == {"make", "copy"} and stages["copy"].cmd == "cp a.txt b.txt"
        assert not stages["copy"].frozen
        graph = repo.index.graph   # an edge from a stage to the stages whose outputs it reads
        assert isinstance(graph, nx.DiGraph) and list(graph.successors(stages["copy"])) == [stages["make"]]
        assert [s.addressing for s in repo.stage.collect("copy")] == ["copy"]
        assert repo._lock_depth == 0 and not repo.lock.is_locked
        with lock_repo(repo):
            assert repo.lock.is_locked and Path(repo.lock.lockfile).read_text().strip() == str(os.getpid())
            with lock_repo(repo):   # DVC's locked methods nest without locking again
                assert repo._lock_depth == 2
            assert stages["make"].changed()
            (tiny / "a.txt").write_text("a\n")
            repo.commit("make", force=True)   # dvc commit -f, itself @locked: nested in the hold
            assert "make" in yaml.safe_load((tiny / "dvc.lock").read_text())["stages"]
            stages["make"].remove_outs(ignore_remove=False, force=False)
            assert not (tiny / "a.txt").exists()
        assert not repo.lock.is_locked
    finally:
        repo.close()


BUSY = "while True: pass"
RAY_PROBE = textwrap.dedent("""
    import importlib.util, json, os, ray
    from gmg.grid import ray_session, without_import_shims

    @ray.remote
    def probe():
        shim = importlib.util.find_spec("rfc3987_syntax")
        return {"niceness": os.nice(0), "shim": bool(shim and "gmg-grid-shims-" in (shim.origin or "")),
                "stage_env": without_import_shims(dict(os.environ)).get("PYTHONPATH", "")}

    with ray_session(num_cpus=1):
        print(json.dumps(ray.get(probe.remote())))
""")


def test_ray_starts_while_every_core_is_busy(tmp_path):
    """The grid's own start of a local Ray instance (its settings, import shim and retries) while busy loops occupy
    every core, started before it: Ray starts, a task runs at Ray's default worker niceness (15, as --help says), the
    import shim reaches the workers and a stage's environment is without it."""
    burners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(os.cpu_count() or 2)]
    try:
        run = subprocess.run([sys.executable, "-c", RAY_PROBE], cwd=tmp_path, env=_tiny_env(), capture_output=True,
                             text=True, timeout=HUNG)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-4000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    # Ray raises its workers' niceness by 15 (an increment: under `nice -n 5 pytest` they run at 19, the cap)
    assert seen["niceness"] == min(19, os.nice(0) + 15), seen
    assert seen["shim"] == (importlib.util.find_spec("rfc3987_syntax") is not None), seen
    assert "gmg-grid-shims-" not in seen["stage_env"], seen


def _ray_start_head(port: int, env: dict) -> None:
    "`ray start --head` on the loopback address, as the cluster recipe (nbs/19_compendium.ipynb) starts a head (retried like the grid's start)."
    cmd = ["ray", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
           "--include-dashboard=false", "--disable-usage-stats"]
    for attempt in range(RAY_START_ATTEMPTS):
        started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HUNG)
        if started.returncode == 0:
            return
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=HUNG)
    raise AssertionError(f"ray start --head failed {RAY_START_ATTEMPTS} times:\n{started.stderr[-3000:]}")


def test_the_readme_cluster_recipe_joins_a_head_started_with_ray_start(tiny):
    """The cluster recipe of nbs/19_compendium.ipynb as written, on one machine: a token generated (`ray get-auth-token --generate`), so that
    `ray start --head` turns token authentication on; a grid without RAY_AUTH_MODE=token is refused in one line that
    says what to set, and with it runs the stages."""
    env = {**_tiny_env(), "HOME": str(tiny.parent)}       # its own ~/.ray/auth_token
    for key in [k for k in env if k.startswith("RAY_AUTH")]:
        env.pop(key)
    _sh(["ray", "get-auth-token", "--generate"], tiny, env)
    assert (tiny.parent / ".ray" / "auth_token").is_file()
    port = 6390 + os.getpid() % 50
    _ray_start_head(port, env)
    try:
        refused = _grid(tiny, env, "--address", f"127.0.0.1:{port}")
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr[-3000:]
        assert "set RAY_AUTH_MODE=token" in refused.stderr and "Traceback" not in refused.stderr
        joined = _grid(tiny, {**env, "RAY_AUTH_MODE": "token"}, "--address", f"127.0.0.1:{port}")
        assert joined.returncode == 0, joined.stderr[-3000:]
        assert (tiny / "b.txt").read_text() == "a\n" and (tiny / "dvc.lock").exists()
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=HUNG)


def _start_cluster():
    "Two one-CPU nodes on the loopback address, the head with the grid's own Ray settings."
    from ray.cluster_utils import Cluster
    cluster = Cluster()
    try:
        node = dict(num_cpus=1, object_store_memory=80 * 2**20, node_ip_address="127.0.0.1")
        cluster.add_node(**node, **ray_node_settings())   # the head: its system config is every node's
        cluster.add_node(**node)
        cluster.wait_for_nodes()
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.shutdown()
        raise
    return cluster


def _beside(repo: Path, env: dict, run: subprocess.Popen, address: str) -> dict:
    "Once the grid `run` runs stages, a second grid and a `dvc repro` on the same repository."
    logs = repo / "results" / "grid-logs"
    while run.poll() is None and not list(logs.glob("*.log")):
        time.sleep(0.2)
    second = _grid(repo, env, "--address", address)
    repro = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=HUNG)
    return {"pid": run.pid, "second": second, "repro": repro, "still_running": run.poll() is None}


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
    out, reference = {"serial": serial, "grid": grid, "env": env}, None
    # the stages run in the environment of the cluster's workers, i.e. of this process: make it the serial run's
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    cluster, stack = None, contextlib.ExitStack()
    try:
        stack.enter_context(quick_ray_imports())   # as the grid's own local start (nbs/15_grid.ipynb)
        # more attempts than the grid's own: a fixture, not the claim under test (that is the busy-loop test above)
        cluster = start_with_retries(_start_cluster, attempts=3 * RAY_START_ATTEMPTS)
        reference = subprocess.Popen(["dvc", "repro"], cwd=serial, env=serial_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
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
        with open(base / "run.out", "w+") as stdout, open(base / "run.err", "w+") as stderr:
            run = subprocess.Popen([sys.executable, "-m", "gmg.grid", "--address", cluster.address], cwd=grid,
                                   env=env, stdout=stdout, stderr=stderr, text=True)
            try:
                out["beside"] = _beside(grid, env, run, cluster.address)
                run.wait(timeout=HUNG)
            finally:
                if run.poll() is None:
                    run.kill()
            stdout.seek(0), stderr.seek(0)
            out["run"] = subprocess.CompletedProcess(run.args, run.returncode, stdout.read(), stderr.read())
        stop.set()
        killer.join()
        out["killed"] = killed
        out["again"] = _grid(grid, env, "--address", cluster.address)
    except BaseException:
        if reference is not None:
            reference.kill()
        raise
    finally:
        if cluster is not None:
            cluster.shutdown()
        stack.close()
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


def test_a_second_writer_is_refused_while_the_grid_runs(grid_run):
    "One writer per repository: a second grid exits 2 naming the running one; a `dvc repro` beside it fails to lock."
    beside = grid_run["beside"]
    second, repro = beside["second"], beside["repro"]
    assert beside["still_running"], "the grid ended before the second writer was tried"
    assert second.returncode == 2, (second.returncode, second.stdout, second.stderr)
    assert f"is in use: pid {beside['pid']} (python -m gmg.grid --address" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr, second.stderr
    assert repro.returncode != 0 and "Unable to acquire lock" in repro.stdout + repro.stderr, repro.stdout + repro.stderr


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

"""Fault injection and configuration checks for `gmg.train`.

The central test kills a real training process (SIGKILL, no chance to clean up) once it has written a
checkpoint, resumes it, and checks that it ends bit for bit where an uninterrupted run ends: model, optimizer,
random states and the logged history. Both runs use one thread so that the CPU kernels are reproducible.
"""
from __future__ import annotations
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from gmg.train import CHECKPOINT, TrainConfig, load_checkpoint, main, train

ROOT = Path(__file__).resolve().parents[1]
RUN = dict(dataset="dsprites", batch_size=16, steps=40, checkpoint_every=5, log_every=5, threads=1, lr=1e-3,
           regularizer="gmg", target="decoder", cost="cosine", lam=1.0, seed=3)

def _command(out_dir: Path, **overrides) -> list[str]:
    pairs = [f"{k}={json.dumps(v)}" for k, v in {**RUN, **overrides}.items()]
    return [sys.executable, "-m", "gmg.train", str(out_dir), *pairs, "--no-progress"]

def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DVC_ROOT", None)   # not inside a DVC stage
    return env

def _checkpoint_step(path: Path) -> int:
    try:
        return load_checkpoint(path)["step"]
    except (ValueError, FileNotFoundError):
        return -1

def _assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a / CHECKPOINT), load_checkpoint(b / CHECKPOINT)
    assert ca["step"] == cb["step"] == RUN["steps"]
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), f"weights differ: {k}"
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), f"optimizer {i}.{k} differs"
    assert torch.equal(ca["generator"], cb["generator"]) and torch.equal(ca["torch_rng"], cb["torch_rng"])
    assert ca["numpy_rng"] == cb["numpy_rng"]
    hist = lambda d: {p.name: p.read_text() for p in (d / "dvclive" / "plots" / "metrics").rglob("*.tsv")}
    ha, hb = hist(a), hist(b)
    assert ha.keys() == hb.keys() and ha == hb, "logged histories differ"
    assert json.loads((a / "metrics.json").read_text())["loss"] == json.loads((b / "metrics.json").read_text())["loss"]

def test_killed_run_resumes_to_identical_weights(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_command(full), env=_env(), check=True, cwd=tmp_path)

    proc = subprocess.Popen(_command(killed), env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # no deadline: a slow machine only makes this loop longer (work is bounded by the run's steps)
    while _checkpoint_step(killed / CHECKPOINT) < 10:       # let it get past two checkpoints
        assert proc.poll() is None, f"training exited early: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    step = _checkpoint_step(killed / CHECKPOINT)
    assert 10 <= step < RUN["steps"], f"the kill did not land mid-run (checkpoint at step {step})"
    assert not (killed / "metrics.json").exists()

    subprocess.run(_command(killed), env=_env(), check=True, cwd=tmp_path)
    _assert_same_run(full, killed)
    assert _files(killed) == _files(full), "the resumed run's files are not the uninterrupted run's bytes"

def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}

SHORT = dict(RUN, steps=12, checkpoint_every=4, log_every=4)

def test_a_kill_mid_write_leaves_no_trace_in_the_resumed_run(tmp_path):
    "What SIGKILL leaves mid-write (temporary files, dvclive's summary cut short) is gone from the resumed run's bytes."
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(SHORT, full, progress=False)
    train(SHORT, cut, progress=False, stop_after=8)
    (cut / f".{CHECKPOINT}.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    (cut / "dvclive" / "plots" / "metrics" / "train" / ".loss.tsv.k1ll3d.tmp").write_text("step\tloss\n")
    (cut / "dvclive" / "metrics.json").write_text("")
    train(SHORT, cut, progress=False)
    assert _files(cut) == _files(full)

def test_a_kill_between_the_last_checkpoint_and_the_outputs_is_finished_identically(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(SHORT, full, progress=False)
    train(SHORT, cut, progress=False)
    for name in ("metrics.json", "traversal.png"):   # killed before the final outputs ...
        (cut / name).unlink()
    summary = cut / "dvclive" / "metrics.json"      # ... while dvclive rewrote its summary
    summary.write_text(summary.read_text()[:40])
    train(SHORT, cut, progress=False)
    assert _files(cut) == _files(full)

def test_resume_refuses_another_configuration(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**{**RUN, "steps": 2, "checkpoint_every": 1}), out, progress=False)
    with pytest.raises(ValueError, match="cost: checkpoint 'cosine' vs config 'sqeuclidean'"):
        train(TrainConfig(**{**RUN, "steps": 2, "cost": "sqeuclidean"}), out, progress=False)
    # extending the run is allowed, and continues from step 2
    res = train(TrainConfig(**{**RUN, "steps": 3, "checkpoint_every": 1}), out, progress=False)
    assert res["step"] == 3 and load_checkpoint(out / CHECKPOINT)["step"] == 3

@pytest.mark.parametrize("fields, message", [
    (dict(model="vae"), "expected one of beta_vae, beta_tcvae"),
    (dict(regularizer="gromov"), "expected one of none, gmg, dst, jacobian"),
    (dict(regularizer="gmg", lam=1.0, cost="euclidean"), "expected one of sqeuclidean, scaled_sqeuclidean, cosine"),
    (dict(regularizer="dst", lam=1.0, target="both"), "expected one of encoder, decoder"),
    (dict(dataset="celeba"), "expected one of dsprites, shapes3d, smallnorb, cars3d"),
    (dict(source="web"), "expected one of procedural, official"),
    (dict(lam=0.5), "regularizer='none'"),
    (dict(regularizer="jacobian", lam=1.0, target="encoder"), "acts on the decoder"),
    (dict(decoder_free=True, regularizer="dst", lam=1.0, target="decoder"), "decoder-free"),
    (dict(steps=0), "steps must be ≥ 1"),
    (dict(lr=-1.0), "lr must be > 0"),
    (dict(eps0=0.0, regularizer="gmg", lam=1.0), "eps0 must be > 0"),
    (dict(batch_size="64"), "batch_size must be of type int"),
])
def test_bad_configurations_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**fields)

def test_unknown_key_rejected_on_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "x"), "lamda=1.0"])
    assert exit_.value.code == 2
    assert "unknown configuration key(s) lamda: expected some of" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    proc = subprocess.run(_command(tmp_path / "y", regularizer="sinkhorn"), env=_env(), cwd=tmp_path,
                          capture_output=True, text=True)
    # one clear line, status 2, no traceback, nothing written
    assert proc.returncode == 2 and "unknown regularizer 'sinkhorn'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "y" / CHECKPOINT).exists()

def test_help_lists_every_configuration_key_with_default_and_meaning():
    proc = subprocess.run([sys.executable, "-m", "gmg.train", "--help"], env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0
    for field in TrainConfig.__dataclass_fields__.values():
        assert f"  {field.name}={json.dumps(field.default)}" in proc.stdout, field.name
    assert "ε0 of the GMG ε rule" in proc.stdout and "weight λ of the regularizer" in proc.stdout

def test_gmg_without_lambda_is_refused_and_with_lambda_acts_on_every_step(tmp_path):
    """`python -m gmg.train out regularizer=gmg steps=30` refuses (no λ: it would train without the regularizer);
    with λ the regularizer acts: the losses differ from λ = 0 and its gradient is nonzero on every logged step."""
    base = ["regularizer=gmg", "steps=30", "batch_size=16", "log_every=5", "threads=1", "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "gmg.train", str(tmp_path / "none"), *base], env=_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "lam=0" in proc.stderr and "regularizer='gmg'" in proc.stderr
    common = dict(dataset="dsprites", steps=30, batch_size=16, log_every=5, threads=1, seed=0)
    plain = train(TrainConfig(**common), tmp_path / "plain", progress=False)
    acting = train(TrainConfig(**common, regularizer="gmg", lam=1000.0), tmp_path / "gmg", progress=False)
    assert acting["loss"] != plain["loss"] and acting["rec"] != plain["rec"]
    grad_reg = _window_means(tmp_path / "gmg", "grad_reg")
    assert len(grad_reg) == 6 and all(g > 0 for g in grad_reg), grad_reg
    assert acting["reg_grad_active"] == 1.0

def test_cuda_requested_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(TrainConfig(**{**RUN, "device": "cuda"}), tmp_path / "z", progress=False)

def _window_means(out: Path, metric: str) -> list[float]:
    rows = (out / "dvclive" / "plots" / "metrics" / "train" / f"{metric}.tsv").read_text().splitlines()[1:]
    return [float(r.split("\t")[1]) for r in rows]

def test_dsprites_training_lowers_loss_with_the_gmg_term_acting(tmp_path):
    """A few hundred steps on dSprites: the loss falls with and without λ·GMG (decoder, Cos); the regularized run
    differs from the plain one, its regularizer gradient is nonzero on every logged step, and it does not wreck the
    reconstruction. (Not asserted: that the logged GMG_ε falls. At this stage the decoder is close to a
    Gromov-Monge map, the exact gap is small and GMG_ε carries its entropic bias ε·H(P), with ε from the ε rule —
    a constant for the gradient, as in the paper — so the logged value follows the costs' spread, not the gap.)"""
    base = dict(dataset="dsprites", batch_size=32, steps=240, log_every=20, checkpoint_every=1000, threads=2,
                lr=5e-4, target="decoder", cost="cosine", seed=0)
    runs = {lam: tmp_path / f"lam{lam}" for lam in (0.0, 3000.0)}
    for lam, out in runs.items():
        train(TrainConfig(**{**base, "lam": lam, "regularizer": "gmg" if lam else "none"}), out, progress=False)
    for out in runs.values():
        loss = _window_means(out, "loss")
        assert loss[-1] < 0.3 * loss[0], loss
    assert _window_means(runs[0.0], "rec") != _window_means(runs[3000.0], "rec")
    assert all(g > 0 for g in _window_means(runs[3000.0], "grad_reg"))
    rec = {lam: _window_means(out, "rec")[-1] for lam, out in runs.items()}
    assert rec[3000.0] < 1.5 * rec[0.0], rec     # the regularizer does not wreck the reconstruction


def test_the_calibrated_gmg_lambda_gives_the_regularizer_a_share_of_every_logged_update(tmp_path):
    """`python -m gmg.train out regularizer=gmg lam=<params.yaml's calibrated λ> steps=20 log_every=5`: `reg_share`
    (λ‖∇R‖ / ‖∇ total‖ over the decoder) is logged, and positive, on every logged step."""
    import yaml
    lam = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["train"]["lam"]["gmg"]
    proc = subprocess.run([sys.executable, "-m", "gmg.train", str(tmp_path / "gmg"), "regularizer=gmg", f"lam={lam}",
                           "steps=20", "log_every=5", "batch_size=32", "threads=1", "--no-progress"],
                          env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [r.split("\t") for r in (tmp_path / "gmg" / "dvclive/plots/metrics/train/reg_share.tsv").read_text().splitlines()]
    shares = [float(r[rows[0].index("reg_share")]) for r in rows[1:]]
    assert len(shares) == 4 and all(s > 0 for s in shares), shares

def _one_line_refusal(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    "Exit status 2, one line on stderr holding every fragment, no traceback."
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr

def test_refusals_found_when_the_run_starts_are_one_line(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**{**RUN, "steps": 1, "checkpoint_every": 1}), out, progress=False)
    resumed = subprocess.run(_command(out, steps=1, cost="sqeuclidean"), env=_env(), cwd=tmp_path,
                             capture_output=True, text=True)
    _one_line_refusal(resumed, "written by a different configuration", "cost: checkpoint 'cosine'")
    (out / CHECKPOINT).write_bytes((out / CHECKPOINT).read_bytes()[:100])    # a damaged checkpoint
    damaged = subprocess.run(_command(out, steps=2), env=_env(), cwd=tmp_path, capture_output=True, text=True)
    _one_line_refusal(damaged, "cannot read checkpoint", "delete it to train again from step 0")
    missing = subprocess.run(_command(tmp_path / "official", source="official", data_root=str(tmp_path / "none")),
                             env=_env(), cwd=tmp_path, capture_output=True, text=True)
    _one_line_refusal(missing, "not found", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")

def test_the_train_stage_finds_official_files_in_data_root_per_dataset(tmp_path):
    """dvc.yaml passes `-p data_root data`, the folder the README and the datasets stage put `data/<dataset>/` in:
    the train notebook must look in data_root/<dataset>/. A reduced grid written there is found, then refused as
    not the official grid (strict): the message proves which file was read."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_datasets import write_dsprites
    (tmp_path / "data" / "dsprites").mkdir(parents=True)
    write_dsprites(tmp_path / "data" / "dsprites" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "nbs" / "experiments" / "train.ipynb"),
           str(tmp_path / "train.ipynb"), "--cwd", str(tmp_path), "-p", "out_dir", str(tmp_path / "run"),
           "-p", "source", "official", "-p", "data_root", "data", "-p", "regularizer", "none", "-p", "lam", "0.0",
           "-p", "steps", "1", "-p", "threads", "1"]
    proc = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "official (3, 6, 40, 32, 32)" in proc.stderr and "not found" not in proc.stderr, proc.stderr[-3000:]

def test_bfloat16_autocast_is_deterministic_and_really_on(tmp_path):
    """Two identical bfloat16 runs write identical bytes (what a reproducible pipeline needs), and they differ from
    the float32 run of the same seed (the autocast is on); the regularizers still get float32 inputs."""
    bf16 = {**RUN, "steps": 6, "checkpoint_every": 3, "log_every": 3, "precision": "bfloat16"}
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "f32"]
    for out, fields in zip(runs, (bf16, bf16, {**bf16, "precision": "float32"})):
        train(TrainConfig(**fields), out, progress=False)
    a, b, f32 = (_files(r) for r in runs)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)]
    ca, cf = load_checkpoint(runs[0] / CHECKPOINT), load_checkpoint(runs[2] / CHECKPOINT)
    assert any(not torch.equal(ca["model"][k], cf["model"][k]) for k in ca["model"])
    assert all(v.dtype == torch.float32 for v in ca["model"].values() if v.is_floating_point())
    from gmg.models import VAE
    from gmg.train import _forward
    model, x = VAE(1), torch.rand(4, 1, 64, 64)
    out = _forward(TrainConfig(precision="bfloat16"), model, x, torch.Generator().manual_seed(0))
    assert {t.dtype for t in (out.mu, out.logvar, out.z, out.logits)} == {torch.float32}

def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="expected one of float32, bfloat16"):
        TrainConfig(precision="float16")

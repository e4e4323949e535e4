"""`gmg.params`: every section of params.yaml and of the profile's files is checked, with a one-line message.

Each bad value is applied to a copy of the repository's own `params.yaml` and `profiles/`, so the tests follow the
real files; the command line must exit 2 with one line and no traceback. (That `dvc exp run -S train.cost=...`
stops at the first stage is tested end to end in `tests/test_pipeline.py`.)
"""
from __future__ import annotations
import os, shutil, subprocess, sys
from pathlib import Path
import pytest
import yaml
from gmg.params import ParamsError, check_params

ROOT = Path(__file__).resolve().parents[1]

def _copy(tmp: Path, change: dict | None = None, profile_change: tuple[str, dict] | None = None) -> Path:
    "params.yaml + profiles/ in `tmp`, with `change` (`section.key` → value; `...` deletes) and one profile file changed."
    shutil.copytree(ROOT / "profiles", tmp / "profiles")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in (change or {}).items():
        *sections, key = dotted.split(".")
        node = params
        for s in sections:
            node = node[s]
        if value is ...:
            del node[key]
        else:
            node[key] = value
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if profile_change:
        name, fields = profile_change
        path = tmp / "profiles" / params["profile"] / name
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **fields}))
    return tmp / "params.yaml"

@pytest.mark.parametrize("profile", ["cpu", "micro", "paper"])
def test_repository_params_pass_with_every_profile(tmp_path, profile):
    assert check_params(_copy(tmp_path, {"profile": profile})).startswith(f"profile {profile}: ")

def test_the_papers_grid_passes(tmp_path):
    "The grid the README passes with -S for the paper profile, and its HFS and ε0 variants."
    grid = yaml.safe_load((ROOT / "profiles" / "paper" / "grid.yaml").read_text())
    axes = {f"train.{k}": grid[k] for k in ("datasets", "models", "regularizers", "seeds")}
    for i, (key, value) in enumerate([("train.hfs_gamma", v) for v in grid["hfs_gamma"]]
                                     + [("train.eps0", v) for v in grid["eps0"]]):
        assert "160 training run(s)" in check_params(_copy(tmp_path / str(i), {"profile": "paper", **axes, key: value}))

BAD = {   # section: [(change, profile file change, expected message fragment)]
    "top level": [({"profile": "laptop"}, None, "profile: unknown profile 'laptop': expected one of cpu, gpu, micro, paper"),
                  ({"seed": -1}, None, "seed must be an integer ≥ 0, got -1"),
                  ({"extra": 1}, None, "top level: unknown key(s) extra"),
                  ({"toy": ...}, None, "top level: missing key(s) toy")],
    "datasets": [({"datasets.names": "dsprites,mnist"}, None, "datasets.names: expected a non-empty subset of dsprites"),
                 ({"datasets.source": "web"}, None, "datasets.source: unknown source 'web': expected one of procedural, official"),
                 ({"datasets.build_cache": "yes please"}, None, "datasets.build_cache must be true or false"),
                 ({"datasets.threads": 0}, None, "datasets.threads must be an integer ≥ 1, got 0")],
    "toy": [({"toy.costs": "cosine,l1"}, None, "toy (row l1): unknown cost 'l1'"),
            ({"toy.targets": "square,disc"}, None, "toy.targets: expected a non-empty subset of square, annulus"),
            ({"toy.clusters": "5,8,3"}, None, "toy.clusters must hold one value or one per row (2)"),
            ({"toy.steps": 0}, None, "steps must be >= 1, got 0"),
            ({"toy.eps0": "small"}, None, "toy (row sqeuclidean)"),
            ({"toy.seeds": "1,x"}, None, "toy.seeds must be an integer ≥ 0, got 'x'")],
    "train": [({"train.cost": "nonsense"}, None, "unknown cost 'nonsense': expected one of sqeuclidean, scaled_sqeuclidean, cosine"),
              ({"train.regularizers": ["none", "ot"]}, None, "train.regularizers: expected a non-empty subset of none, gmg, dst, jacobian"),
              ({"train.datasets": ["mnist"]}, None, "train.datasets: expected a non-empty subset of dsprites"),
              ({"train.models": "beta_vae"}, None, "train.models: a DVC matrix axis must be a non-empty list"),
              ({"train.seeds": [0, 1.5]}, None, "train.seeds must be an integer ≥ 0, got 1.5"),
              ({"train.target": "latent"}, None, "unknown regularizer target 'latent'"),
              ({"train.eps0": -0.1}, None, "eps0 must be > 0"),
              ({"train.lam.gmg": "a lot"}, None, "lam must be of type float, got 'a lot'"),
              ({"train.lam": 100.0}, None, "train.lam: expected a λ for each of gmg, dst, jacobian"),
              ({"train.lam.jacobian": ...}, None, "train.lam: expected a λ for each of gmg, dst, jacobian"),
              ({"train.seeds": [0, 0, 1]}, None, "train.seeds: seed 0 appears more than once"),
              ({"train.seeds": [0, 1000]}, None, "train.seeds: seed 1000 is a pilot seed"),
              ({"train.lamda": 1.0}, None, "train: unknown key(s) lamda")],
    "profile train.yaml": [({}, ("train.yaml", {"steps": "1k"}), "profiles/cpu/train.yaml: steps must be of type int, got '1k'"),
                           ({}, ("train.yaml", {"stpes": 10}), "profiles/cpu/train.yaml: unknown configuration key(s) stpes"),
                           ({}, ("train.yaml", {"device": "tpu"}), "unknown device 'tpu'")],
    "evaluate": [({"evaluate.seed": "zero"}, None, "evaluate.seed must be an integer ≥ 0, got 'zero'")],
    "profile evaluate.yaml": [({}, ("evaluate.yaml", {"metrics": "dci,irs"}), "profiles/cpu/evaluate.yaml: metrics: expected a non-empty subset of dci"),
                              ({}, ("evaluate.yaml", {"size_fraction": 0}), "size_fraction: fraction must be in (0, 1]"),
                              ({}, ("evaluate.yaml", {"n_jobs": 0}), "n_jobs must be ≥ 1 or -1"),
                              ({}, ("evaluate.yaml", {"bins": 20}), "profiles/cpu/evaluate.yaml: unknown key(s) bins")],
    "report": [({"report.ci": 95}, None, "report.ci must be a number in (0, 1), got 95"),
               ({"report.n_boot": 10}, None, "report.n_boot must be an integer ≥ 100, got 10")],
}
CASES = [pytest.param(*case, id=f"{section}: {case[2][:40]}") for section, cases in BAD.items() for case in cases]

@pytest.mark.parametrize("change,profile_change,message", CASES)
def test_a_bad_value_is_named_in_one_line(tmp_path, change, profile_change, message):
    with pytest.raises(ParamsError) as error:
        check_params(_copy(tmp_path, change, profile_change))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(str(tmp_path / "params.yaml") + ": ")

def test_numbers_as_the_command_line_hands_them_over(tmp_path):
    "`-S train.eps0=1e-3` is a string to YAML 1.1 but a number to papermill's `-p`: accepted, as the stage would."
    assert check_params(_copy(tmp_path, {"train.eps0": "1e-3", "train.lam.gmg": "100", "toy.seeds": 4}))

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "gmg.params", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)

def test_command_line_exit_status_and_one_line(tmp_path):
    good = _cli("check", cwd=ROOT)
    assert good.returncode == 0 and good.stdout.count("\n") == 1 and good.stdout.startswith("params.yaml: ok (")
    _copy(tmp_path, {"train.cost": "nonsense"})
    bad = _cli("check", cwd=tmp_path)          # default path: ./params.yaml, as in the stage commands
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("gmg.params: params.yaml: train (run ") and "Traceback" not in bad.stderr
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    broken = _cli("check", "params.yaml", cwd=tmp_path)
    assert broken.returncode == 2 and "params.yaml: not valid YAML" in broken.stderr and "Traceback" not in broken.stderr
    missing = _cli("check", "nowhere.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "gmg.params: nowhere.yaml: no such file" in missing.stderr

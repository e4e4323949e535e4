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
    _set_dotted(params, change or {})
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
    "The grid nbs/19_compendium.ipynb passes with -S for the paper profile, and its HFS and ε0 variants."
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

# ------------------------------------------------------------------ the study (study/params.yaml, `check --study`)

from gmg.params import STUDY_BETAS, check_study   # noqa: E402

def _set_dotted(tree: dict, changes: dict) -> None:
    "Set (or, for the value `...`, delete) each dotted key of `changes` in the nested mapping `tree`."
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        node = tree
        for s in sections:
            node = node[s]
        if value is ...:
            del node[key]
        else:
            node[key] = value


def _study_copy(tmp: Path, change: dict | None = None, profile_change: dict | None = None, beta=4.0) -> tuple[Path, Path]:
    """params.yaml, profiles/, the train notebook and study/params.yaml in `tmp`, the study with β = `beta` (one of
    the pilot grid, as the pilot writes it) and `change` (`study.key` → value; `...` deletes) applied, and the study
    profile's train.yaml updated with `profile_change`. Returns (study/params.yaml, params.yaml)."""
    params = _copy(tmp)
    (tmp / "nbs" / "experiments").mkdir(parents=True)
    shutil.copy(ROOT / "nbs" / "experiments" / "train.ipynb", tmp / "nbs" / "experiments" / "train.ipynb")
    study = yaml.safe_load((ROOT / "study" / "params.yaml").read_text())
    _set_dotted(study, {"study.beta": beta, **(change or {})})
    (tmp / "study").mkdir()
    (tmp / "study" / "params.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    if profile_change:
        path = tmp / "profiles" / "study" / "train.yaml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **profile_change}))
    return tmp / "study" / "params.yaml", params

def test_the_repository_study_passes(tmp_path):
    "The committed study passes with its β unchosen (the pilot runs with it so) and with every β of the pilot grid."
    assert "36 training run(s)" in check_study(ROOT / "study" / "params.yaml", ROOT / "params.yaml", require_beta=False)
    for beta in STUDY_BETAS:
        assert f"β = {beta:g}" in check_study(*_study_copy(tmp_path / str(beta), beta=beta))

STUDY_BAD = [   # (change to the study, profile train.yaml change, expected message fragment)
    ({"study.beta": None}, None, "study.beta is null: not chosen yet (run `python tools/choose_beta.py run`"),
    ({"study.beta": 3.0}, None, "study.beta: 3.0 is not in the pilot grid 1, 2, 4, 6, 8, 16"),
    ({"study.beta": "big"}, None, "study.beta: 'big' is not in the pilot grid"),
    ({"study.seeds": [10, 11, 1000]}, None, "study.seeds: seed 1000 is a pilot seed"),
    ({"study.seeds": [10, 11, 11]}, None, "study.seeds: seed 11 appears more than once"),
    ({"study.seeds": 10}, None, "study.seeds: a DVC matrix axis must be a non-empty list"),
    ({"study.lam": {"dst": 10000.0, "gmg": 100000.0}}, None,
     "study.lam.gmg = 100000.0 differs from params.yaml train.lam.gmg = 200000.0"),
    ({"study.lam": {"dst": 1000.0, "gmg": 200000.0}}, None,
     "study.lam.dst = 1000.0 differs from params.yaml train.lam.dst = 10000.0"),
    ({"study.lam": {"gmg": 200000.0}}, None, "study.lam: expected a λ for each of dst, gmg"),
    ({"study.lamda": 1.0}, None, "study: unknown key(s) lamda"),
    ({"study.report": ...}, None, "study: missing key(s) report"),
    ({"study.regularizers": ["none", "jacobian"]}, None, "study.regularizers: expected a non-empty subset of none, dst, gmg"),
    ({"study.datasets": ["mnist"]}, None, "study.datasets: expected a non-empty subset of dsprites"),
    ({"study.model": "vae"}, None, "study.model: unknown model 'vae'"),
    ({"study.cost": "l1"}, None, "study.cost = 'l1' differs from params.yaml train.cost = 'cosine'"),
    ({"study.eps0": 0.1}, None, "study.eps0 = 0.1 differs from params.yaml train.eps0 = 0.01: the calibrated λs hold"),
    ({"study.target": "encoder"}, None, "study.target = 'encoder' differs from params.yaml train.target = 'decoder'"),
    ({"study.steps": 0}, None, "study.steps must be an integer ≥ 1, got 0"),
    ({"study.profile": "laptop"}, None, "study.profile: unknown profile 'laptop'"),
    ({"study.evaluate_seed": -1}, None, "study.evaluate_seed must be an integer ≥ 0, got -1"),
    ({"study.report": {"n_boot": 10, "ci": 0.95, "seed": 0}}, None, "study.report.n_boot must be an integer ≥ 100"),
    ({}, {"stpes": 10}, "profiles/study/train.yaml: unknown configuration key(s) stpes"),
    ({}, {"threads": "one"}, "profiles/study/train.yaml: threads must be of type int"),
]

@pytest.mark.parametrize("change,profile_change,message", STUDY_BAD, ids=[m[:40] for *_, m in STUDY_BAD])
def test_a_bad_study_value_is_named_in_one_line(tmp_path, change, profile_change, message):
    study, params = _study_copy(tmp_path, change, profile_change)
    with pytest.raises(ParamsError) as error:
        check_study(study, params)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    assert str(error.value).startswith(f"{study}: ")

def test_a_profile_field_the_notebook_would_drop_must_be_the_default(tmp_path):
    "`precision: bfloat16` reaches TrainConfig only through a `precision` parameter of the train notebook."
    from gmg.params import notebook_parameters
    declared = notebook_parameters(ROOT / "nbs" / "experiments" / "train.ipynb")
    study, params = _study_copy(tmp_path, profile_change={"precision": "bfloat16"})
    if "precision" in declared:
        assert check_study(study, params)
    else:
        with pytest.raises(ParamsError, match="precision 'bfloat16' would be ignored: train.ipynb has no `precision`"):
            check_study(study, params)
    assert check_study(*_study_copy(tmp_path / "default", profile_change={"precision": "float32"}))

def test_the_root_pipeline_refuses_the_study_profile(tmp_path):
    with pytest.raises(ParamsError, match="profile: unknown profile 'study' is the study's"):
        check_params(_copy(tmp_path, {"profile": "study"}))

def test_command_line_with_the_study(tmp_path):
    "`check --study`: two lines and exit 0 with a chosen β; one line on stderr and exit 2 for a bad study value."
    _study_copy(tmp_path)
    good = _cli("check", "--study", cwd=tmp_path)
    assert good.returncode == 0 and good.stdout.count("\n") == 2, good.stderr
    assert good.stdout.splitlines()[1].startswith("study/params.yaml: ok (profile study: 36 training run(s)")
    _study_copy(tmp_path / "unchosen", beta=None)
    bad = _cli("check", "--study", cwd=tmp_path / "unchosen")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("gmg.params: study/params.yaml: study.beta is null: not chosen yet")
    other = _cli("check", "params.yaml", "--study", "elsewhere.yaml", cwd=tmp_path)
    assert other.returncode == 2 and "gmg.params: elsewhere.yaml: no such file" in other.stderr

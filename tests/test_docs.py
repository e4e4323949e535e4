"""The notebooks read as the documentation.

- nbdev's documentation build gets past its first step: `nbdev-proc-nbs` (run by `nbdev-docs` and
  `nbdev-preview` before Quarto) exits 0 on a copy of the repository, without Quarto, and every exported
  function and class has its rendered API entry (`show_doc`) in the processed notebooks;
- every cell that nbdev executes because it holds an import holds imports only (the doc build runs those cells
  alone: anything else in them would run without the cells it needs);
- every library notebook (`nbs/*.ipynb`, index included) carries the outputs of its execution
  (`python tools/refresh_notebooks.py` writes them): printed checks, and an image for every cell that draws a
  figure;
- the committed Quarto site configuration is complete (its stylesheet exists, relative links only) and its
  sidebar, README's layout section and the index's reading-order table agree on the reader's path.

`nbs/experiments/*.ipynb` are exempt from the outputs checks: they are papermill templates whose committed form
has no outputs. DVC executes them with the pipeline's parameters and keeps the executed copies among its outputs
under `results/`, so outputs committed in the templates would be stale the moment a parameter changes.
"""
import ast
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
EXPORT = re.compile(r"^#\|\s*(export|exporti|exports)\b", re.M)


def library_notebooks() -> list[Path]:
    "index, then the numbered notebooks in nbdev's order (file names)."
    numbered = sorted(p for p in NBS.glob("*.ipynb") if p.name != "index.ipynb" and not p.name.startswith(("_", ".")))
    return [NBS / "index.ipynb", *numbered]


def experiment_notebooks() -> list[Path]:
    return sorted((NBS / "experiments").glob("*.ipynb"))


def code_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [{**c, "source": "".join(c["source"])} for c in cells if c["cell_type"] == "code"]


def parse(source: str) -> ast.Module:
    "A cell's Python, with IPython magics and shell escapes left out."
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))


def _top_level_calls(tree: ast.Module):
    "Calls made when the cell runs: everything outside function and class bodies."
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def draws_figure(source: str) -> bool:
    "Does running the cell call pyplot or seaborn (`plt.…`, `sns.…`) outside a function definition?"
    for call in _top_level_calls(parse(source)):
        f = call.func
        while isinstance(f, ast.Attribute):
            f = f.value
        if isinstance(f, ast.Name) and f.id in ("plt", "sns"):
            return True
    return False


def has_image(cell: dict) -> bool:
    return any(k.startswith("image/") for o in cell.get("outputs", []) for k in o.get("data", {}))


def names(paths) -> list[str]:
    return [p.relative_to(NBS).as_posix() for p in paths]


# ------------------------------------------------------------------ the checks' own oracles (fail if they break)

def test_figure_detection():
    assert draws_figure("fig, ax = plt.subplots()\nax.plot([1, 2])")
    assert draws_figure("for k in range(2):\n    sns.lineplot(x=[1], y=[k])")
    assert draws_figure("traversal(ds)\nplt.show()")
    assert not draws_figure("def helper():\n    plt.plot([1])")      # defines, draws nothing
    assert not draws_figure("x = 1\nprint('plt.show()')")


# ------------------------------------------------------------------ cells nbdev executes during the doc build

@pytest.mark.parametrize("path", library_notebooks() + experiment_notebooks(), ids=lambda p: p.relative_to(NBS).as_posix())
def test_import_cells_hold_imports_only(path):
    """nbdev's doc build executes exported cells and any cell containing an import; such a cell must hold
    imports only (code that needs earlier cells belongs in the next cell). Exported cells run anyway."""
    mixed = []
    for cell in code_cells(path):
        if EXPORT.search(cell["source"]):
            continue
        tree = parse(cell["source"])
        if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)):
            if any(not isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body):
                mixed.append(cell.get("id") or cell["source"].splitlines()[0])
    assert not mixed, f"{path.name}: cells mixing imports with other code (put the imports in a cell of their own): {mixed}"


def _exported_api() -> dict[str, list[str]]:
    "Public functions and classes defined by each generated module (its `__all__`)."
    api = {}
    for py in sorted((ROOT / "gmg").glob("*.py")):
        if py.name.startswith("_"):
            continue
        module = importlib.import_module(f"gmg.{py.stem}")
        api[module.__name__] = [n for n in getattr(module, "__all__", [])
                                if (inspect.isfunction(obj := vars(module).get(n)) or inspect.isclass(obj))
                                and obj.__module__ == module.__name__]
    return api


def test_doc_build_preprocessing(tmp_path):
    """`nbdev-proc-nbs` on a copy of the repository exits 0, needs no Quarto, and renders every API entry.

    A `quarto` on PATH that fails if called keeps nbdev from trying to install Quarto and proves this step does
    not use it; the copy keeps the build's files (`_proc/`, nbdev.yml, sidebar.yml, `_modidx.py`) out of the
    working tree."""
    for name in ("nbs", "gmg"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    stub = tmp_path / "bin" / "quarto"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho 'quarto was called by a step that must not need it' >&2\nexit 3\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["nbdev-proc-nbs"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"nbdev-proc-nbs failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"

    rendered = set()
    for nb in (tmp_path / "_proc").rglob("*.ipynb"):
        for cell in code_cells(nb):
            call = re.search(r"^show_doc\((\w+)\)", cell["source"], re.M)
            md = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in cell.get("outputs", []))
            if call and f"### {call.group(1)}" in md:
                rendered.add(call.group(1))
    missing = {m: [n for n in api if n not in rendered] for m, api in _exported_api().items()}
    missing = {m: n for m, n in missing.items() if n}
    assert not missing, f"exported without a rendered API entry in the processed notebooks: {missing}"


# ------------------------------------------------------------------ outputs in place

@pytest.mark.parametrize("path", library_notebooks(), ids=lambda p: p.name)
def test_notebook_carries_its_outputs(path):
    "Outputs of an execution are committed: every printing cell has its text, every figure cell its image, no errors."
    cells = code_cells(path)
    assert any(c.get("outputs") for c in cells), f"{path.name} has no outputs: run python tools/refresh_notebooks.py {path.stem}"
    problems = []
    for c in cells:
        label = c.get("id") or c["source"].splitlines()[0]
        outputs = c.get("outputs", [])
        if any(o.get("output_type") == "error" for o in outputs):
            problems.append(f"{label}: an error output")
        if draws_figure(c["source"]) and not has_image(c):
            problems.append(f"{label}: draws a figure but has no image output")
        if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print" for n in _top_level_calls(parse(c["source"]))) \
                and not any(o.get("output_type") == "stream" for o in outputs):
            problems.append(f"{label}: prints but has no printed output")
    assert not problems, f"{path.name} (run python tools/refresh_notebooks.py {path.stem}):\n" + "\n".join(problems)


# ------------------------------------------------------------------ the site and the reader's path

def _sidebar_pages(entries) -> list[str]:
    pages = []
    for e in entries:
        if isinstance(e, str):
            pages.append(e)
        elif "section" in e:
            pages += _sidebar_pages(e.get("contents", []))
        else:
            pages.append(e["href"])
    return pages


def test_quarto_site_config():
    cfg = yaml.safe_load((NBS / "_quarto.yml").read_text())
    assert cfg["project"]["type"] == "website"
    assert not Path(cfg["project"]["output-dir"]).is_absolute()
    css = cfg["format"]["html"].get("css", [])
    for sheet in [css] if isinstance(css, str) else css:
        assert (NBS / sheet).is_file(), f"_quarto.yml names the stylesheet {sheet}, which is missing from nbs/"
    site = cfg["website"]
    for key in ("site-url", "repo-url"):   # relative links unless a real address is set here on purpose
        assert key not in site or not site[key] or not re.search(r"gmg-dev|example\.", str(site[key]))
    assert "sidebar.yml" not in cfg.get("metadata-files", []), "the sidebar is in _quarto.yml; nbdev regenerates sidebar.yml"

    contents = site["sidebar"]["contents"]
    pages = _sidebar_pages(contents)
    assert len(pages) == len(set(pages)), "a page is listed twice in the sidebar"
    library = [p for p in pages if not p.startswith("experiments/")]
    assert library == names(library_notebooks()), "the sidebar's library pages are not the notebooks in reading order"
    sections = [e for e in contents if isinstance(e, dict) and "section" in e]
    experiments = [s for s in sections if all(str(p).startswith("experiments/") for p in _sidebar_pages(s["contents"]))]
    assert len(experiments) == 1, "the experiments must be one section of their own"
    assert sorted(_sidebar_pages(experiments[0]["contents"])) == names(experiment_notebooks())


def test_reading_order_agrees():
    "README's layout section and the index's reading-order table list the notebooks in the sidebar's order."
    order = [p.stem for p in library_notebooks()]
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"in reading order:(.*?);", readme, re.S)
    assert listed, "README's layout section lost its 'in reading order: ...;' list of notebooks"
    assert re.findall(r"`([\w.]+)`", listed.group(1)) == order, "README's reading order differs from the notebooks'"

    index = json.loads((NBS / "index.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in index["cells"] if c["cell_type"] == "markdown")
    table = text[text.index("## Reading order"):]
    mentioned = [n for n in re.findall(r"`(\w+)`", table) if n in order]
    assert sorted(set(mentioned), key=mentioned.index) == order[1:], "index.ipynb's reading-order table differs"

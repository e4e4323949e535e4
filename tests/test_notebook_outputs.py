"""The committed outputs of the notebooks read as documentation: clean, and with the figures their cells draw.

Fast: nothing is executed, the committed `.ipynb` files are read as JSON.

1. No committed output of any notebook under `nbs/` (`nbs/experiments/` included) carries a warning, a traceback
   (text or an `error` output) or an absolute path of the machine that ran it: a reader would take the first two
   for a failure, and the third is another machine's file system.
2. Every cell of a library notebook (`nbs/*.ipynb`) that draws a figure has a PNG among its outputs, and the
   notebooks whose subject is a figure (`03_maps`, the paper's Figure 2; `14_train`, the latent traversals) show
   at least one. `nbs/experiments/` is left out of this one: those notebooks are papermill templates, committed
   without outputs; their executed copies are pipeline outputs under `results/`.

`tools/refresh_notebooks.py` rewrites a notebook's outputs; run it after editing one.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
# not the copies tools keep in folders of their own (.ipynb_checkpoints, nbdev's _proc)
ALL_NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb")
                       if not any(part.startswith((".", "_")) for part in p.relative_to(NBS).parts[:-1]))
LIBRARY_NOTEBOOKS = sorted(NBS.glob("*.ipynb"))
MUST_SHOW_A_FIGURE = ("03_maps.ipynb", "14_train.ipynb")

# what must never be in an output: a warning, a traceback, a path on this machine's (or a laptop's) file system
FORBIDDEN = {"a warning": re.compile(r"Warning"), "a traceback": re.compile(r"Traceback"),
             "an absolute path": re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users)/")}
# calls that draw a figure: a cell making one of them at its top level (not inside a function it only defines)
DRAWING_METHODS = {"show", "subplots", "figure", "plot", "imshow"}   # plt.show(), ax.plot(...), ...


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def as_text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def output_texts(output: dict) -> list[str]:
    "The text a reader sees in one output: printed streams, text representations, an error's traceback."
    if output.get("output_type") == "stream":
        return [as_text(output.get("text", ""))]
    if output.get("output_type") == "error":
        return [output.get("ename", ""), output.get("evalue", ""), *map(str, output.get("traceback", []))]
    return [as_text(v) for k, v in output.get("data", {}).items() if k.startswith("text/") or k.endswith("json")]


def problems(path: Path) -> list[str]:
    "One line per output of `path` that shows something it must not (empty: clean)."
    found = []
    for i, cell in enumerate(cells(path)):
        for output in cell.get("outputs", []):
            where = f"{path.relative_to(ROOT)} cell {i} ({cell.get('id')})"
            if output.get("output_type") == "error":
                found.append(f"{where}: an error output ({output.get('ename')})")
            for text in output_texts(output):
                for what, pattern in FORBIDDEN.items():
                    m = pattern.search(text)
                    if m:
                        found.append(f"{where}: {what}: ...{text[max(0, m.start() - 60):m.end() + 60]!r}...")
    return found


def _code(source: str) -> str:
    "A cell's source as Python: nbdev's `#|` directives are comments already; IPython's `%`/`!` lines dropped."
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def draws(source: str) -> bool:
    """Whether a cell draws a figure when it runs: a drawing call (`plt.show`, `plt.subplots`, `plt.figure`,
    `.plot(`, `imshow`, `display(Image(...))`) outside the bodies of the functions and classes it defines."""
    try:
        tree = ast.parse(_code(source))
    except SyntaxError:   # not Python (a cell of another language): judged by its text
        return bool(re.search(r"plt\.(show|subplots|figure)\(|\.plot\(|imshow\(|display\(\s*Image\(", source))

    def visit(node) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return False   # defined, not run
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in DRAWING_METHODS:
                return True
            if name == "display" and any(isinstance(a, ast.Call) and getattr(a.func, "id", getattr(a.func, "attr", ""))
                                         == "Image" for a in node.args):
                return True
        return any(visit(child) for child in ast.iter_child_nodes(node))

    return visit(tree)


def has_png(cell: dict) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def test_the_checks_see_what_they_look_for():
    "The detectors themselves, on made-up cells and outputs."
    assert draws("fig, ax = plt.subplots()\nax.plot([1, 2])") and draws("plt.imshow(a)\nplt.show()")
    assert draws("display(Image(filename=str(p)))") and draws("for r in rows:\n    ax.imshow(r)")
    assert not draws("def figure_of(ds):\n    fig, ax = plt.subplots()\n    return fig")
    assert not draws("#| export\nclass Plotter:\n    def show(self): plt.show()") and not draws("x = 1")
    assert draws("%matplotlib inline\nplt.figure()")
    stream = {"output_type": "stream", "name": "stderr", "text": ["/x/y.py:3: UserWarning: careful\n"]}
    assert any(FORBIDDEN["a warning"].search(t) for t in output_texts(stream))
    for path_text in ("/work/main/results", "saved to /tmp/abc", "'/home/me/x'", "/Users/me/", "/root/.cache"):
        assert FORBIDDEN["an absolute path"].search(path_text), path_text
    for fine in ("results/runs/a", "a/tmp/b", "km/h", "nbs/work/x"):
        assert not FORBIDDEN["an absolute path"].search(fine), fine


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS)))
def test_no_warning_traceback_or_machine_path_in_outputs(path):
    found = problems(path)
    assert not found, "\n".join(found) + "\n(refresh the notebook after removing the cause: tools/refresh_notebooks.py)"


@pytest.mark.parametrize("path", LIBRARY_NOTEBOOKS, ids=lambda p: p.name)
def test_every_drawing_cell_shows_its_figure(path):
    missing = [f"cell {i} ({c.get('id')})" for i, c in enumerate(cells(path))
               if c["cell_type"] == "code" and draws(as_text(c["source"])) and not has_png(c)]
    assert not missing, (f"{path.name}: these cells draw a figure but have no image/png output: {', '.join(missing)} "
                         "(refresh the notebook: tools/refresh_notebooks.py)")


@pytest.mark.parametrize("name", MUST_SHOW_A_FIGURE)
def test_figure_notebooks_show_a_figure(name):
    assert any(has_png(c) for c in cells(NBS / name)), f"{name} has no image/png output"

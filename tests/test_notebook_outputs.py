"""The committed outputs of the notebooks read as documentation: clean.

Fast: nothing is executed, the committed `.ipynb` files are read as JSON.

No committed output of any notebook under `nbs/` (`nbs/experiments/` included) or of the executed copies in
`docs/experiment-runs/` carries a warning, a traceback (text
or an `error` output) or an absolute path of the machine that ran it: a reader would take the first two for a
failure, and the third is another machine's file system.
Figures (every drawing cell shows its image; 03_maps and 14_train show one) are checked in tests/test_docs.py.

`tools/refresh_notebooks.py` rewrites a notebook's outputs; run it after editing one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
# not the copies tools keep in folders of their own (.ipynb_checkpoints, nbdev's _proc)
ALL_NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb")
                       if not any(part.startswith((".", "_")) for part in p.relative_to(NBS).parts[:-1]))
# the executed copies the experiment pages show (gmg.docsite, tools/experiment_pages.py) are read as documentation too
ALL_NOTEBOOKS += sorted((ROOT / "docs" / "experiment-runs").glob("*.ipynb"))

# what must never be in an output: a warning, a traceback, a path on this machine's (or a laptop's) file system
FORBIDDEN = {"a warning": re.compile(r"Warning"), "a traceback": re.compile(r"Traceback"),
             "an absolute path": re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users)/")}


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


def test_the_checks_see_what_they_look_for():
    "The detectors themselves, on made-up outputs."
    stream = {"output_type": "stream", "name": "stderr", "text": ["/x/y.py:3: UserWarning: careful\n"]}
    assert any(FORBIDDEN["a warning"].search(t) for t in output_texts(stream))
    for path_text in ("/work/main/results", "saved to /tmp/abc", "'/home/me/x'", "/Users/me/", "/root/.cache"):
        assert FORBIDDEN["an absolute path"].search(path_text), path_text
    for fine in ("results/runs/a", "a/tmp/b", "km/h", "nbs/work/x"):
        assert not FORBIDDEN["an absolute path"].search(fine), fine


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_warning_traceback_or_machine_path_in_outputs(path):
    found = problems(path)
    assert not found, "\n".join(found) + "\n(refresh the notebook after removing the cause: tools/refresh_notebooks.py)"

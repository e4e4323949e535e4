"""The notebooks read as the documentation.

- nbdev's documentation build gets past its first step: `nbdev-proc-nbs` (run by `nbdev-docs` and
  `nbdev-preview` before Quarto) exits 0 on a copy of the repository, without Quarto, and every exported
  function and class has its rendered API entry (`show_doc`) in the processed notebooks;
- every cell that nbdev executes because it holds an import holds imports only (the doc build runs those cells
  alone: anything else in them would run without the cells it needs);
- every library notebook (`nbs/*.ipynb`, index included) carries the outputs of its execution
  (`python tools/refresh_notebooks.py` writes them): printed checks, and an image for every cell that draws a
  figure;
- the site's links lead somewhere: every link of the processed notebooks to a page or a file leads to a page made
  from a notebook or a file of the repository, cross-references land on their entry, and every API entry's source
  link names the file and line of its definition (that those links open from the site needs a repository
  address: an expected failure until there is one);
- the public API's entries document every parameter (the comment after each parameter in the source, which
  show_doc renders beside the parameter in the entry's signature);
- the committed Quarto site configuration is complete (its stylesheet exists, relative links only) and its
  sidebar, 19_compendium's layout section and the index's reading list agree on the reader's path.

`nbs/experiments/*.ipynb` are exempt from the outputs checks: they are papermill templates whose committed form
has no outputs. DVC executes them with the pipeline's parameters and keeps the executed copies among its outputs
under `results/`, so outputs committed in the templates would be stale the moment a parameter changes.
"""
import ast
import importlib
import inspect
import json
import os
import posixpath
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


DRAWING_METHODS = {"show", "subplots", "figure", "plot", "imshow"}   # plt.show(), ax.plot(...), axes[0].imshow(...)


def _name(f) -> str:
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def draws_figure(source: str) -> bool:
    """Does running the cell draw a figure outside a function definition: a pyplot or seaborn call (`plt.…`,
    `sns.…`), a drawing method on any object (`ax.plot`, `axes[0].imshow`, …) or `display(Image(...))`?"""
    for call in _top_level_calls(parse(source)):
        f = call.func
        if _name(f) in DRAWING_METHODS or (_name(f) == "display" and any(
                isinstance(a, ast.Call) and _name(a.func) == "Image" for a in call.args)):
            return True
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
    assert draws_figure("display(Image(filename=str(p)))") and draws_figure("for r in rows:\n    axes[0].imshow(r)")
    assert draws_figure("%matplotlib inline\nplt.figure()")
    assert not draws_figure("#| export\nclass Plotter:\n    def show(self): plt.show()")


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


@pytest.fixture(scope="module")
def processed_docs(tmp_path_factory):
    """`nbdev-proc-nbs` run once on a copy of the repository: (the copy, the finished process).

    A `quarto` on PATH that fails if called keeps nbdev from trying to install Quarto and proves this step does
    not use it; the copy keeps the build's files (`_proc/`, nbdev.yml, sidebar.yml, `_modidx.py`) out of the
    working tree."""
    root = tmp_path_factory.mktemp("docs")
    for name in ("nbs", "gmg", "docs"):   # docs/: the experiment pages' executed copies
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, root / name)
    stub = root / "bin" / "quarto"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho 'quarto was called by a step that must not need it' >&2\nexit 3\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["nbdev-proc-nbs"], cwd=root, env=env, capture_output=True, text=True)
    return root, run


def processed(processed_docs) -> Path:
    "The processed notebooks' folder, once `nbdev-proc-nbs` has exited 0."
    root, run = processed_docs
    assert run.returncode == 0, f"nbdev-proc-nbs failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    return root / "_proc"


def test_doc_build_preprocessing(processed_docs):
    "`nbdev-proc-nbs` on a copy of the repository exits 0, needs no Quarto, and renders every API entry."
    rendered = set()
    for nb in processed(processed_docs).rglob("*.ipynb"):
        for cell in code_cells(nb):
            call = re.search(r"^show_doc\((\w+)\)", cell["source"], re.M)
            md = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in cell.get("outputs", []))
            if call and f"### {call.group(1)}" in md:
                rendered.add(call.group(1))
    missing = {m: [n for n in api if n not in rendered] for m, api in _exported_api().items()}
    missing = {m: n for m, n in missing.items() if n}
    assert not missing, f"exported without a rendered API entry in the processed notebooks: {missing}"


# ------------------------------------------------------------------ links and parameter documentation of the site

# The public API whose entries must document every parameter (docments: a comment after each parameter in the
# signature), by notebook. nbdev 3's `show_doc` renders docments as that comment beside each parameter in the
# entry's signature block: that block is the parameter table (fastcore's markdown `DocmentTbl` is no longer what
# show_doc writes).
API_ENTRIES = {"02_gap.ipynb": ["gromov_monge_gap", "GapInfo"], "01_gromov.ipynb": ["entropic_gw", "GWResult"],
               "00_costs.ipynb": ["cost_matrix"], "14_train.ipynb": ["train", "TrainConfig"],
               "13_metrics.ipynb": ["evaluate"], "10_datasets.ipynb": ["load"]}
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)|href=\"([^\"]+)\"")
HEADING = re.compile(r"^#{2,4} (\S+)", re.M)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _page(rel: str) -> str:
    "Where the site puts the page of notebook `rel` (relative to nbs/), relative to the site's root."
    from nbdev.config import nbpath2html
    return nbpath2html(rel).as_posix()


def _markdown(nb: Path):
    "(text, show_doc heading or None) of each markdown cell and of each markdown output (show_doc's entries)."
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            yield "".join(cell["source"]), None
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md:
                md = "".join(md)
                heading = HEADING.search(md)
                yield md, heading.group(1).replace("\\_", "_") if heading else None


def _links(proc: Path):
    "(notebook relative to _proc, link text, target, show_doc heading) of every link the processed notebooks hold."
    for nb in sorted(proc.rglob("*.ipynb")):
        for text, heading in _markdown(nb):
            for m in LINK.finditer(text):
                yield nb.relative_to(proc).as_posix(), m.group(1), m.group(2) or m.group(3), heading


def _site_target(rel: str, target: str) -> str:
    """The path a link of notebook `rel` leads to, relative to the site's root: Quarto rewrites a site-root link
    (`/x`) relative to each page, and the site mirrors nbs/ (a page sits at its notebook's place)."""
    path = target.split("#")[0]
    if path.startswith("/"):
        return posixpath.normpath(path.lstrip("/"))
    return posixpath.normpath(posixpath.join(posixpath.dirname(rel), path))


def _resolves(rel: str, target: str, pages: set[str]) -> bool:
    """Does the link lead to a page made from a notebook, a file the site publishes (nbs/), or a file of the
    repository (the site's folder, like nbs/, sits one level below the repository's root)?"""
    site = _site_target(rel, target)
    if not site.startswith("../"):
        return (site in pages or (site.endswith(".ipynb") and _page(site) in pages)
                or ((NBS / site).is_file() and not site.startswith("_")))
    repo = posixpath.normpath(posixpath.join("nbs", site))
    return not repo.startswith("../") and (ROOT / repo).is_file()


def _is_source(text: str, target: str) -> bool:
    return text == "source" or bool(re.search(r"#L\d+$", target))


def _source_file(rel: str, target: str) -> tuple[str, int]:
    """(repository path, line) a source link of notebook `rel` names. nbdev writes
    `urljoin(git_url + "/", "blob/<branch>/<path>")` and `#L<line>` (doclinks.py `_qual_sym`, `NbdevLookup.code`),
    git_url from `[project.urls] Repository`; a relative link names the file it leads to."""
    from urllib.parse import urljoin
    from gmg._modidx import d
    s = d["settings"]
    prefix = urljoin(s["git_url"] + "/", f"blob/{s['branch']}/")
    url, _, line = target.partition("#L")
    assert line.isdigit(), f"a source link without its line (#L<n>): {target}"
    if url.startswith(prefix):
        return url[len(prefix):], int(line)
    assert not SCHEME.match(url) and not url.startswith("/"), f"not nbdev's form {prefix}<file>, nor relative: {target}"
    return posixpath.normpath(posixpath.join("nbs", posixpath.dirname(rel), url)), int(line)


def exported_module(nb: Path) -> str:
    "The module a notebook exports to (its `#| default_exp`; the processed copies lose that cell)."
    for cell in json.loads(nb.read_text())["cells"]:
        m = re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M)
        if m:
            return m.group(1)
    return ""


def test_doc_links_resolve(processed_docs):
    """Every link of the processed notebooks (markdown cells, and show_doc's entries) to a page or a file leads to
    a page made from a notebook or to a file of the repository; a cross-reference to a public name lands on its
    entry; every source link names a file of the repository and the line that defines the documented name.

    Cross-references are written by nbdev from the site's root (`/gap.html#gromov_monge_gap`: nbdev puts its
    `doc_host` + `doc_baseurl` first, and with no documentation address that is `/`); Quarto rewrites every
    site-root link relative to the page (website-resources.ts), so they work wherever the site is served.
    Source links are checked for their file and line here; whether they open from the site is the next test."""
    from gmg._modidx import d as modidx
    proc = processed(processed_docs)
    pages = {_page(nb.relative_to(proc).as_posix()) for nb in proc.rglob("*.ipynb")}
    entries = {}   # page -> anchors of its API entries
    for nb in proc.rglob("*.ipynb"):
        entries[_page(nb.relative_to(proc).as_posix())] = {h.lower() for _, h in _markdown(nb) if h}
    defined = {}   # name -> modules of gmg that define it
    for module, syms in modidx["syms"].items():
        for sym in syms:
            defined.setdefault(sym[len(module) + 1:], []).append(module)

    broken, wrong_line, no_entry, sources, pages_linked = [], [], [], 0, 0
    for rel, text, target, heading in _links(proc):
        if SCHEME.match(target) or target.startswith(("#", "//")):
            continue                                # external, or within the page
        where = f"{rel}: [{text}]({target})"
        if _is_source(text, target):
            sources += 1
            path, line = _source_file(rel, target)
            source = ROOT / path
            if not source.is_file():
                broken.append(where)
                continue
            lines = source.read_text().splitlines()
            name = (heading or "").split(".")[-1]
            defines = re.compile(rf"^\s*(async\s+def|def|class)\s+{re.escape(name)}\b")
            if not (name and 0 < line <= len(lines) and defines.match(lines[line - 1])):
                wrong_line.append(f"{where} (documents {heading})")
            elif (module := exported_module(NBS / rel)) and path != f"gmg/{module}.py":
                wrong_line.append(f"{where} (documents {heading} of another module)")
            continue
        pages_linked += 1
        if not _resolves(rel, target, pages):
            broken.append(where)
            continue
        anchor = target.partition("#")[2]
        site = _site_target(rel, target)
        if anchor and site in entries and not anchor.startswith("_") and "." not in anchor \
                and anchor not in entries[site]:
            no_entry.append(where)
    # nbdev looks a documented name up by its bare name (the doc build defines it in the notebook's kernel, not in
    # a module), so a public name that two modules define gets the first module's source link (grid's and params'
    # command lines are grid_cli and params_cli for this reason; train's stays main)
    shared = {name: mods for name, mods in defined.items() if len(mods) > 1 and not name.startswith("_")}
    assert not shared, f"public names defined by several modules (their source links collide): {shared}"
    assert sources and pages_linked, f"no source link ({sources}) or no link to a page ({pages_linked}) was found"
    assert not broken, "links that lead nowhere in the repository or the site:\n" + "\n".join(broken)
    assert not wrong_line, "source links to the wrong line or module:\n" + "\n".join(wrong_line)
    assert not no_entry, "cross-references to a public name without an entry on that page:\n" + "\n".join(no_entry)


def test_source_links_open_from_the_site(processed_docs):
    "Every source link opens from the site: an address of the repository, or a relative link to its file."
    from gmg._modidx import d as modidx
    proc = processed(processed_docs)
    pages = {_page(nb.relative_to(proc).as_posix()) for nb in proc.rglob("*.ipynb")}
    git_url = modidx["settings"]["git_url"]
    dead = [f"{rel}: {target}" for rel, text, target, _ in _links(proc) if _is_source(text, target)
            and not (git_url and SCHEME.match(target) and target.startswith(git_url + "/"))
            and (SCHEME.match(target) or not _resolves(rel, target, pages))]
    assert not dead, f"{len(dead)} source links that do not open from the site, e.g.:\n" + "\n".join(dead[:5])


def test_experiment_pages_show_a_runs_outputs(processed_docs):
    """Each experiment template with a committed executed copy (docs/experiment-runs/) shows that copy's outputs on
    its page, cell by cell, under a note that names the run; the templates of the training pipeline all have one."""
    from gmg.docsite import EXPERIMENT_RUNS
    proc = processed(processed_docs)
    copies = {p.stem: json.loads(p.read_text()) for p in (ROOT / EXPERIMENT_RUNS).glob("*.ipynb")}
    assert {"datasets", "train", "evaluate", "report"} <= set(copies), f"executed copies: {sorted(copies)}"
    for name, run in copies.items():
        page = json.loads((proc / "experiments" / f"{name}.ipynb").read_text())["cells"]
        shown = {c.get("id"): c.get("outputs", []) for c in page if c["cell_type"] == "code"}
        expected = {c["id"]: c["outputs"] for c in run["cells"] if c["cell_type"] == "code" and c.get("outputs")}
        assert expected, f"{name}: its executed copy has no outputs"
        for cell_id, outputs in expected.items():
            if cell_id in shown:   # a cell nbdev keeps on the page (not a hidden one)
                assert shown[cell_id] == outputs, f"{name}: cell {cell_id} does not show the run's outputs"
        assert any(shown.get(i) for i in expected), f"{name}: no output of the run is on the page"
        notes = ["".join(c["source"]) for c in page if c["cell_type"] == "markdown"]
        assert any(run["metadata"]["gmg_run"]["source"] in n for n in notes), f"{name}: no note naming the run"


def _signature_block(md: str) -> list[str]:
    block = re.search(r"```python\n(.*?)\n```", md, re.S)
    return block.group(1).splitlines() if block else []


def test_api_entries_document_their_parameters(processed_docs):
    """The public API's entries carry a parameter table: show_doc's signature block has, for every parameter, the
    comment that documents it in the source (and for the return value, where the source documents it).

    TrainConfig's fields are documented by the comments beside them; the doc build runs the notebook's cells in a
    kernel, where a dataclass's source (and so those comments) cannot be read (fastcore's `get_dataclass_source`
    gives none for `__main__`), so its docstring repeats them as a NumPy `Parameters` section, which show_doc
    reads instead: comparing the rendered table with the comments keeps the two the same."""
    from fastcore.docments import docments
    proc = processed(processed_docs)
    problems = []
    for nb_name, names in API_ENTRIES.items():
        module = importlib.import_module(f"gmg.{exported_module(NBS / nb_name)}")
        rendered = {h: md for md, h in _markdown(proc / nb_name) if h}
        for name in names:
            obj = getattr(module, name)
            documented = docments(obj)
            if name not in rendered:
                problems.append(f"{name}: no API entry in {nb_name}")
                continue
            lines = _signature_block(rendered[name])
            if "Parameters\n----------" in rendered[name]:
                problems.append(f"{name}: the docstring's Parameters section is shown as text, not as the table")
            params = [p for p in inspect.signature(obj).parameters if p != "self"]
            if not params:
                problems.append(f"{name}: no parameters found")
            for p in params:
                doc = (documented.get(p) or "").splitlines()
                if not doc:
                    problems.append(f"{name}({p}): no comment documents it in the source")
                    continue
                row = re.compile(rf"^\s*(\*,\s*)?{p}\b[^#]*#\s*(.*)$")
                shown = [m.group(2) for line in lines if (m := row.match(line))]
                if shown != [doc[0]]:
                    problems.append(f"{name}({p}): table shows {shown}, the source says {doc[0]!r}")
            if documented.get("return"):
                ret = [line for line in lines if line.startswith(")") and "#" in line]
                if not ret or ret[0].split("#", 1)[1].strip() != documented["return"].splitlines()[0]:
                    problems.append(f"{name}: the documented return value is not in the table")
    assert not problems, "\n".join(problems)


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


@pytest.mark.parametrize("name", ["03_maps.ipynb", "14_train.ipynb"])
def test_figure_notebooks_show_a_figure(name):
    "The notebooks whose subject is a figure (the paper's Figure 2; the latent traversals) show at least one."
    assert any(has_image(c) for c in code_cells(NBS / name)), f"{name} has no image output"


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
    "19_compendium's layout section and the index's reading list name the notebooks in the sidebar's order."
    order = [p.stem for p in library_notebooks()]

    def markdown_of(name: str) -> str:
        cells = json.loads((NBS / name).read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")

    listed = re.search(r"in reading order:(.*?);", markdown_of("19_compendium.ipynb"), re.S)
    assert listed, "19_compendium's layout section lost its 'in reading order: ...;' list of notebooks"
    assert re.findall(r"`([\w.]+)`", listed.group(1)) == order, "19_compendium's reading order differs"

    text = markdown_of("index.ipynb")
    reading = text[text.index("## Read on"):]
    mentioned = [n for n in re.findall(r"\[`(\w+)`\]\((\w+)\.ipynb\)", reading) if n[0] in order]
    assert all(a == b for a, b in mentioned), "index.ipynb links a notebook under another notebook's name"
    names_in_order = [a for a, _ in mentioned]
    assert sorted(set(names_in_order), key=names_in_order.index) == order[1:], "index.ipynb's reading list differs"

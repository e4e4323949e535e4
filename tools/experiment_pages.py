"""Copy one executed notebook per experiment template into docs/experiment-runs/, for the documentation site.

    python tools/experiment_pages.py CHECKOUT

CHECKOUT is a checkout of this repository in which the pipelines have run (`dvc repro`, and the study:
`python -m gmg.grid study/dvc.yaml --profile study`): the executed copies are DVC outputs under its `results/`.
Which copy each template gets is `gmg.docsite.EXPERIMENT_SOURCES`; a template whose copy the checkout lacks keeps
its previous one. The doc build (`nbdev-proc-nbs`) shows them on the templates' pages (19_compendium, "The
experiment pages show one run's outputs"). Commit docs/experiment-runs/ afterwards.
"""
import sys
from pathlib import Path

from gmg.docsite import EXPERIMENT_SOURCES, collect_experiment_runs

if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit(f"usage: python {sys.argv[0]} CHECKOUT (a folder; got {sys.argv[1:]})")
    root = Path(__file__).resolve().parents[1]
    copied = collect_experiment_runs(Path(sys.argv[1]), root)
    missing = sorted(set(EXPERIMENT_SOURCES) - set(copied))
    print(f"copied {', '.join(copied) or 'nothing'}" + (f"; not in the checkout: {', '.join(missing)}" if missing else ""))

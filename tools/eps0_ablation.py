"""The paper's ε0 ablation as a pipeline sweep: GMG runs of the current profile at several ε0, scored as usual.

    python tools/eps0_ablation.py run --eps0 0.1,0.001 [--workdir /tmp/gmg-eps0]   # train + evaluate, in a clone
    python tools/eps0_ablation.py table                                              # results/ablation/eps0.{csv,md}

`run` clones this repository (committed state) into a scratch folder and, for each ε0, runs the pipeline's own
stages there with `dvc exp run -S train.eps0=E -S 'train.regularizers=[gmg]'` (the same commands, data and
profile as `dvc repro`), then copies each run's small result files (`results/eval/<run>/{metrics,run}.json`) into
`results/ablation/eps0/<E>/` here. The default ε0 is not rerun: its GMG runs are the main pipeline's, read from
`results/eval/`. `table` gathers everything into `results/ablation/eps0.csv` and `eps0.md`: per ε0 and dataset,
DCI-D (mean ± sd over seeds), the share of logged steps on which GMG's gradient was nonzero, and the coefficient
of variation of its gradient norm next to DST's (from the main pipeline's DST runs).
"""
from __future__ import annotations
import argparse, json, shutil, subprocess, sys
from pathlib import Path
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
ABLATION = ROOT / "results" / "ablation"


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _copy_eval(src_eval: Path, dest: Path, regularizer: str = "gmg") -> int:
    copied = 0
    for run in sorted(src_eval.glob(f"*-{regularizer}-*")):
        if (run / "metrics.json").is_file() and (run / "run.json").is_file():
            (dest / run.name).mkdir(parents=True, exist_ok=True)
            for name in ("metrics.json", "run.json"):
                shutil.copyfile(run / name, dest / run.name / name)
            copied += 1
    return copied


def run(eps0s: list[float], workdir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(workdir)], check=True)
    for eps0 in eps0s:
        cmd = ["dvc", "exp", "run", "-S", f"train.eps0={eps0}", "-S", "train.regularizers=[gmg]", "evaluate"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=workdir, check=True)
        n = _copy_eval(workdir / "results" / "eval", ABLATION / "eps0" / f"{eps0:g}")
        print(f"ε0 = {eps0:g}: {n} evaluated GMG runs copied", flush=True)


def _rows(folder: Path) -> list[dict]:
    rows = []
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
        rows.append({**json.loads((run / "run.json").read_text()), **json.loads((run / "metrics.json").read_text())})
    return rows


def table() -> pd.DataFrame:
    main_eval = ROOT / "results" / "eval"
    rows = _rows(main_eval)
    for folder in sorted((ABLATION / "eps0").glob("*")):
        rows += _rows(folder)
    frame = pd.DataFrame(rows)
    gmg = frame[frame.regularizer == "gmg"].drop_duplicates(["dataset", "eps0", "seed"])
    dst = frame[frame.regularizer == "dst"]
    out = []
    for (eps0, dataset), group in gmg.groupby(["eps0", "dataset"], sort=True):
        ref = dst[dst.dataset == dataset]
        out.append({"eps0": eps0, "dataset": dataset, "seeds": len(group),
                    "dci_d_mean": group.dci_disentanglement.mean(), "dci_d_sd": group.dci_disentanglement.std(ddof=1),
                    "gmg_grad_active": group.grad_reg_active.mean(), "gmg_grad_cv": group.grad_reg_cv.mean(),
                    "dst_grad_cv": ref.grad_reg_cv.mean() if len(ref) else float("nan")})
    result = pd.DataFrame(out).sort_values(["dataset", "eps0"], ascending=[True, False])
    ABLATION.mkdir(parents=True, exist_ok=True)
    result.to_csv(ABLATION / "eps0.csv", index=False, float_format="%.6g")
    (ABLATION / "eps0.md").write_text(markdown(result))
    return result


def markdown(result: pd.DataFrame) -> str:
    lines = ["| dataset | ε0 | seeds | DCI-D (mean ± sd) | GMG gradient active | GMG gradient CV | DST gradient CV |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result.itertuples():
        lines.append(f"| {r.dataset} | {r.eps0:g} | {r.seeds} | {r.dci_d_mean:.3f} ± {r.dci_d_sd:.3f} | "
                     f"{r.gmg_grad_active:.2f} | {r.gmg_grad_cv:.2f} | {r.dst_grad_cv:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and evaluate GMG runs at other ε0 values, in a clone")
    r.add_argument("--eps0", required=True, help="comma-separated ε0 values (the default's runs are the pipeline's)")
    r.add_argument("--workdir", type=Path, default=Path("/tmp/gmg-eps0"))
    sub.add_parser("table", help="write results/ablation/eps0.{csv,md}")
    args = ap.parse_args(argv)
    if args.command == "run":
        default = float(_params()["train"]["eps0"])
        eps0s = [float(e) for e in args.eps0.split(",")]
        if default in eps0s:
            sys.exit(f"ε0 = {default:g} is the pipeline's default: its runs are results/eval/ (run `dvc repro`)")
        run(eps0s, args.workdir)
    print(table().to_string(index=False))


if __name__ == "__main__":
    main()

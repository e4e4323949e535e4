"""Time each metric of gmg.metrics against a straightforward serial version, in the same run.

A 10-d code on Shapes3D-sized factors (10, 10, 10, 8, 4, 15): the standardized factors mixed by a fixed random
6x10 matrix plus a little noise. Default sizes are disentanglement_lib's (DCI 10,000/5,000, ...).
The serial versions are plain loops, one estimator at a time (the way disentanglement_lib writes them); both
sides use the same seeds, so the scores must agree, and the table says whether they do.

    python benchmarks/metrics_speed.py                # defaults (several minutes on 2 cores)
    python benchmarks/metrics_speed.py --scale 0.1    # quick look
"""
import argparse
import os
import time
import warnings

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from gmg import metrics as M

SHAPES3D = (10, 10, 10, 8, 4, 15)


# ---- straightforward serial versions (loops, one estimator at a time) -------------------------------------
def serial_dci(z, y, zt, yt, seed):
    seeds = M._seeds(seed, y.shape[1])
    importance = np.zeros((z.shape[1], y.shape[1]))
    for j in range(y.shape[1]):
        model = GradientBoostingClassifier(random_state=seeds[j]).fit(z, y[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
    return M.disentanglement(importance), M.completeness(importance)


def serial_mig(z, y, n_bins=20):
    binned = [np.digitize(c, np.histogram(c, n_bins)[1][:-1]) for c in z.T]
    mi = np.array([[mutual_info_score(y[:, j], b) for j in range(y.shape[1])] for b in binned])
    h = np.array([mutual_info_score(c, c) for c in y.T])
    top = np.sort(mi, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


def serial_sap(z, y, zt, yt, seed):
    seeds = M._seeds(seed, y.shape[1])
    s = np.zeros((z.shape[1], y.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(z.shape[1]):
            for j in range(y.shape[1]):
                svc = LinearSVC(C=0.01, class_weight="balanced", random_state=seeds[j]).fit(z[:, i:i + 1], y[:, j])
                s[i, j] = np.mean(svc.predict(zt[:, i:i + 1]) == yt[:, j])
    s = np.sort(s, axis=0)
    return float(np.mean(s[-1] - s[-2]))


def serial_explicitness(z, y, zt, yt, seed):
    seeds = M._seeds(seed, y.shape[1])
    mean, std = z.mean(0), z.std(0)
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in range(y.shape[1]):
            model = LogisticRegression(random_state=seeds[j]).fit((z - mean) / std, y[:, j])
            scores.append(M._macro_auc(yt[:, j], model.predict_proba((zt - mean) / std), model.classes_))
    return float(np.mean(scores))


def serial_factor_vae(z_var, batches, fixed, batches_e, fixed_e, n_factors):
    var = z_var.var(0, ddof=1)
    active = np.sqrt(var) >= 0.05

    def votes(bs, fs):
        v = np.zeros((n_factors, active.sum()), np.int64)
        for b, f in zip(bs, fs):
            v[f, np.argmin(b[:, active].var(0, ddof=1) / var[active])] += 1
        return v
    tv, ev = votes(batches, fixed), votes(batches_e, fixed_e)
    pred = tv.argmax(0)
    return float(ev[pred, np.arange(len(pred))].sum() / ev.sum())


def serial_beta_vae(pairs, labels, pairs_e, labels_e, seed):
    feats = lambda ps: np.array([np.mean(np.abs(p[0] - p[1]), axis=0) for p in ps])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=seed).fit(feats(pairs), labels)
    return float(model.score(feats(pairs_e), labels_e))


# ---- the run -------------------------------------------------------------------------------------------------
def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of disentanglement_lib's sizes")
    ap.add_argument("--n-jobs", type=int, default=-1, help="joblib workers for gmg.metrics (-1: all cores)")
    ap.add_argument("--blas-threads", type=int, default=1, help="BLAS/OpenMP threads in this process")
    ap.add_argument("--metrics", default="dci,mig,sap,modularity_explicitness,factor_vae,beta_vae")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dci-repeats", type=int, default=1, help="timings of DCI per side (min is reported)")
    args = ap.parse_args()
    torch.set_num_threads(args.blas_threads)
    threadpool_limits(args.blas_threads)
    sizes = M.MetricSizes() if args.scale == 1 else M.MetricSizes().scaled(args.scale)
    wanted = args.metrics.split(",")

    rng = np.random.default_rng(args.seed)
    draw = M.uniform_factor_sampler(SHAPES3D)
    mix = rng.normal(size=(len(SHAPES3D), 10))
    code = lambda f: ((f - (np.array(SHAPES3D) - 1) / 2) / np.array(SHAPES3D)) @ mix + 0.1 * rng.normal(size=f.shape[:-1] + (10,))
    n_tr, n_te = sizes.dci_train, sizes.dci_test
    y, yt = draw(n_tr, rng), draw(n_te, rng)
    z, zt = code(y), code(yt)

    # start the joblib workers once (a one-off cost of the first parallel call in a session, not per metric)
    _, warmup = timed(lambda: M.dci(z[:60], y[:60], zt[:30], yt[:30], n_jobs=args.n_jobs,
                                    gbt_params={"n_estimators": 2}))
    rows, load0 = [], os.getloadavg()[0]
    if "dci" in wanted:
        t1s, t0s = [], []
        for r in range(args.dci_repeats):  # alternate the order, so a change of load hits both sides
            for side in ((0, 1) if r % 2 else (1, 0)):
                if side:
                    ours, t = timed(lambda: M.dci(z, y, zt, yt, seed=args.seed, n_jobs=args.n_jobs))
                    t1s.append(t)
                else:
                    ref, t = timed(lambda: serial_dci(z, y, zt, yt, args.seed))
                    t0s.append(t)
        rows.append((f"DCI (GBT per factor; min of {args.dci_repeats})", "joblib over factors, largest first",
                     f"{n_tr:,}/{n_te:,}", min(t1s), min(t0s),
                     (ours["dci_disentanglement"], ours["dci_completeness"]) == ref, ours["dci_disentanglement"]))
    if "mig" in wanted:
        ours, t1 = timed(lambda: M.mig(z[:sizes.mig], y[:sizes.mig]))
        ref, t0 = timed(lambda: serial_mig(z[:sizes.mig], y[:sizes.mig]))
        rows.append(("MIG (20 bins)", "vectorized joint histograms", f"{sizes.mig:,}", t1, t0, abs(ours["mig"] - ref) < 1e-12, ours["mig"]))
    if "sap" in wanted:
        a, b = sizes.sap_train, sizes.sap_test
        ours, t1 = timed(lambda: M.sap(z[:a], y[:a], zt[:b], yt[:b], seed=args.seed, n_jobs=args.n_jobs))
        ref, t0 = timed(lambda: serial_sap(z[:a], y[:a], zt[:b], yt[:b], args.seed))
        rows.append(("SAP (LinearSVC per code x factor)", f"joblib, n_jobs={args.n_jobs} (default 1)", f"{a:,}/{b:,}", t1, t0, ours["sap"] == ref, ours["sap"]))
    if "modularity_explicitness" in wanted:
        a, b = sizes.modularity_train, sizes.modularity_test
        ours, t1 = timed(lambda: M.modularity_explicitness(z[:a], y[:a], zt[:b], yt[:b], seed=args.seed,
                                                           n_jobs=args.n_jobs))
        ref, t0 = timed(lambda: serial_explicitness(z[:a], y[:a], zt[:b], yt[:b], args.seed))
        rows.append(("Modularity + explicitness", f"joblib, n_jobs={args.n_jobs} (default 1)", f"{a:,}/{b:,}", t1, t0,
                     abs(ours["explicitness_test"] - ref) < 1e-12, ours["explicitness_test"]))
    if "factor_vae" in wanted:
        n, m, bs = sizes.factor_vae_train, sizes.factor_vae_eval, sizes.factor_vae_batch
        ft, lt = M.fixed_factor_batches(draw, range(6), n, bs, rng)
        fe, le = M.fixed_factor_batches(draw, range(6), m, bs, rng)
        zv, bt, be = z[:sizes.factor_vae_variance], code(ft), code(fe)
        ours, t1 = timed(lambda: M.factor_vae_score(zv, bt, lt, be, le, n_factors=6))
        ref, t0 = timed(lambda: serial_factor_vae(zv, bt, lt, be, le, 6))
        rows.append(("FactorVAE score (votes of 64)", "vectorized votes", f"{n:,}/{m:,}", t1, t0,
                     ours["factor_vae_eval_accuracy"] == ref, ours["factor_vae_eval_accuracy"]))
    if "beta_vae" in wanted:
        n, m, bs = sizes.beta_vae_train, sizes.beta_vae_eval, sizes.beta_vae_batch
        pt, lt = M.paired_factor_batches(draw, range(6), n, bs, rng)
        pe, le = M.paired_factor_batches(draw, range(6), m, bs, rng)
        zp, ze = code(pt), code(pe)
        ours, t1 = timed(lambda: M.beta_vae_score(zp, lt, ze, le, seed=args.seed))
        ref, t0 = timed(lambda: serial_beta_vae(zp, lt, ze, le, args.seed))
        rows.append(("BetaVAE score (pairs of 64)", "vectorized features", f"{n:,}/{m:,}", t1, t0,
                     ours["beta_vae_eval_accuracy"] == ref, ours["beta_vae_eval_accuracy"]))

    print(f"\n10-d code, Shapes3D-sized factors {SHAPES3D}; cpu_count={os.cpu_count()}, n_jobs={args.n_jobs}, "
          f"torch threads={torch.get_num_threads()}, BLAS threads={args.blas_threads}; "
          f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
          f"worker start-up (excluded) {warmup:.1f} s\n")
    print("| metric | gmg.metrics does | points (train/test) | gmg.metrics (s) | serial loop (s) | speed-up | same score | score |")
    print("|---|---|---|---|---|---|---|---|")
    for name, how, pts, t1, t0, same, score in rows:
        print(f"| {name} | {how} | {pts} | {t1:.2f} | {t0:.2f} | {t0 / t1:.2f}x | {'yes' if same else 'NO'} | {score:.3f} |")


if __name__ == "__main__":
    main()

"""Accuracy of frozen efficientnet_lite0 features + LogisticRegression.

Usage (from the repository root)::

    python benchmarks/accuracy.py [--seeds 0 1 2] [--per-class 5 20] [--no-cache] [--json out.json]
                                  [--write-results [FILE]]

* hymenoptera: train on ``train/``, score on ``val/`` (the tutorial split).
  The features are extracted afresh on every run (397 images) so that the
  extraction wall time is measured.
* flowers: for each seed, k images per class drawn at random for training,
  all the other images are the test set; mean +- std over the seeds.
  Embeddings of all 4054 images are cached in ``benchmarks/.cache/``
  (git-ignored), keyed by the file list (paths, sizes, mtimes) and the
  extractor parameters, so reruns skip the extraction of a few minutes; the
  table then reports the extraction time recorded when the cache was built.

Extractor: ``PretrainedFeatureExtractor()`` with all defaults
(``efficientnet_lite0``, real ImageNet weights, engine ``"auto"`` -> ONNX
Runtime on CPU). Classifiers, all fitted on the training images only:

* ``LR(C=1)``: ``LogisticRegression(C=1.0, max_iter=1000)`` (scikit-learn's
  default C; max_iter raised from 100 so lbfgs converges on 1280 features).
* ``scaler+LR(C=1)``: ``StandardScaler()`` then the same LogisticRegression.
* ``LR-CV``: ``LogisticRegressionCV(Cs=10, cv=5, scoring="accuracy", max_iter=1000)``, C chosen by
  5-fold cross-validation on the training set only (for flowers at 5 per
  class, cv=5 is stratified with one image per class per fold).

Data: the folder holding ``hymenoptera/`` and ``flowers/`` that
``sktransfer.datasets.find_data_dir`` finds (``$SKTRANSFER_DATA`` first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import _results
import numpy as np
from _splits import split_per_class

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache"


def data_dir(name):
    from sktransfer.datasets import find_data_dir

    return Path(find_data_dir(name, required=True)) / name


def load_folder(path):
    from sktransfer.datasets import load_image_folder

    with warnings.catch_warnings():  # hymenoptera's imageNotFound.gif is skipped, as intended
        warnings.simplefilter("ignore")
        return load_image_folder(path)


def classifiers():
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "LR(C=1)": lambda: LogisticRegression(C=1.0, max_iter=1000),
        "scaler+LR(C=1)": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
        "LR-CV": lambda: LogisticRegressionCV(Cs=10, cv=5, scoring="accuracy", max_iter=1000),
    }


def fit_score(make, X_train, y_train, X_test, y_test):
    clf = make()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # recent scikit-learn announces LogisticRegressionCV API changes; the
        # behaviour used here (l2, accuracy scoring) is stated explicitly.
        warnings.simplefilter("ignore", FutureWarning)
        clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    acc = float(np.mean(clf.predict(X_test) == y_test))
    extra = {}
    if hasattr(clf, "C_"):
        extra["C_chosen"] = float(np.ravel(clf.C_)[0])
    return acc, fit_s, extra


def make_extractor():
    from sktransfer import PretrainedFeatureExtractor

    return PretrainedFeatureExtractor()


def run_hymenoptera():
    root = data_dir("hymenoptera")
    X_train, y_train = load_folder(root / "train")
    X_val, y_val = load_folder(root / "val")
    ext = make_extractor()
    t0 = time.perf_counter()
    ext.fit(X_train)
    fit_ext_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    F_train = ext.transform(X_train)
    F_val = ext.transform(X_val)
    extract_s = time.perf_counter() - t0
    rows = {}
    for name, make in classifiers().items():
        acc, fit_s, extra = fit_score(make, F_train, y_train, F_val, y_val)
        rows[name] = {"acc": acc, "fit_s": fit_s, **extra}
    return {
        "n_train": len(X_train),
        "n_val": len(X_val),
        "engine": ext._engine,
        "extractor_fit_s": fit_ext_s,
        "extract_s": extract_s,
        "images_per_s": (len(X_train) + len(X_val)) / extract_s,
        "classifiers": rows,
    }


def _file_list_key(paths, params):
    h = hashlib.sha256()
    h.update(json.dumps(params, sort_keys=True).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, ROOT.parent)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cached_arrays(prefix, paths, params, compute, use_cache=True):
    """``compute()`` (a dict of arrays) kept in ``benchmarks/.cache`` between runs.

    Keyed by the file list (paths, sizes, mtimes) and ``params``; written
    through a temporary file, so an interrupted run leaves no broken entry.
    Returns ``(arrays, seconds, path, cached)``, ``seconds`` being how long
    ``compute`` took when the entry was made.
    """
    path = CACHE / f"{prefix}_{_file_list_key(paths, params)}.npz"
    if use_cache and path.is_file():
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k != "__seconds__"}
            return arrays, float(data["__seconds__"]), path, True
    t0 = time.perf_counter()
    arrays = compute()
    seconds = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, __seconds__=seconds, **arrays)
    os.replace(tmp, path)
    return arrays, seconds, path, False


def flowers_features(use_cache=True):
    import torch

    import sktransfer

    paths, labels = load_folder(data_dir("flowers"))
    ext = make_extractor()
    params = {k: str(v) for k, v in ext.get_params().items()}
    params["sktransfer"] = getattr(sktransfer, "__version__", "?")
    params["torch"] = torch.__version__

    def compute():
        ext.fit(paths)
        return {"X": ext.transform(paths), "engine": np.asarray(ext._engine)}

    arrays, extract_s, path, cached = cached_arrays("flowers_features", paths, params, compute, use_cache)
    return (
        arrays["X"],
        labels,
        {
            "cached": cached,
            "extract_s": extract_s,
            "n": len(paths),
            "engine": str(arrays["engine"]),
            "cache_file": str(path.relative_to(ROOT)),
        },
    )


def run_flowers(per_class, seeds, use_cache):
    X, labels, meta = flowers_features(use_cache)
    out = {"meta": meta, "results": {}}
    for k in per_class:
        rows = {}
        for name, make in classifiers().items():
            accs, fits, cs = [], [], []
            for seed in seeds:
                tr, te = split_per_class(labels, k, seed)
                acc, fit_s, extra = fit_score(make, X[tr], labels[tr], X[te], labels[te])
                accs.append(acc)
                fits.append(fit_s)
                if "C_chosen" in extra:
                    cs.append(extra["C_chosen"])
            rows[name] = {
                "accs": accs,
                "mean": float(np.mean(accs)),
                "std": float(np.std(accs)),
                "fit_s_median": statistics.median(fits),
                "n_test": len(te),
                **({"C_chosen": cs} if cs else {}),
            }
        out["results"][k] = rows
    return out


def markdown(hym, flw, seeds):
    lines = [
        (
            "Extractor: `PretrainedFeatureExtractor()` defaults (efficientnet_lite0 ImageNet weights, "
            f"engine auto -> {hym['engine']})."
        ),
        "",
    ]
    lines += [
        (
            f"**hymenoptera** (train {hym['n_train']} -> val {hym['n_val']}); extraction {hym['extract_s']:.1f} s "
            f"({hym['images_per_s']:.1f} images/s; extractor fit {hym['extractor_fit_s']:.1f} s)"
        ),
        "",
        "| classifier | val accuracy | fit s |",
        "|---|---:|---:|",
    ]
    for name, r in hym["classifiers"].items():
        c = f" (C={r['C_chosen']:.3g})" if "C_chosen" in r else ""
        lines.append(f"| {name}{c} | {r['acc']:.4f} | {r['fit_s']:.2f} |")
    m = flw["meta"]
    how = "cached; recorded when built" if m["cached"] else "this run"
    lines += [
        "",
        (
            f"**flowers** ({m['n']} images, 5 classes); extraction {m['extract_s']:.0f} s ({how}, "
            f"{m['n'] / m['extract_s']:.1f} images/s); seeds {list(seeds)}, k per class for training, rest test"
        ),
        "",
        "| k/class | classifier | test accuracy mean ± std | fit s (median) | n test |",
        "|---:|---|---:|---:|---:|",
    ]
    for k, rows in flw["results"].items():
        for name, r in rows.items():
            c = f" (C={', '.join(f'{x:.3g}' for x in r['C_chosen'])})" if "C_chosen" in r else ""
            lines.append(
                f"| {k} | {name}{c} | {r['mean']:.4f} ± {r['std']:.4f} | {r['fit_s_median']:.2f} | {r['n_test']} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--no-cache", action="store_true", help="re-extract the flowers embeddings")
    parser.add_argument("--json", default=None)
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    started = _results.start_run()
    hym = run_hymenoptera()
    print(f"hymenoptera done ({time.perf_counter() - started:.0f} s)", flush=True)
    flw = run_flowers(args.per_class, args.seeds, not args.no_cache)
    table = markdown(hym, flw, args.seeds)
    title = "Accuracy: frozen features + logistic regression"
    _results.finish_run(args, title, table, started, {"hymenoptera": hym, "flowers": flw})


if __name__ == "__main__":
    main()

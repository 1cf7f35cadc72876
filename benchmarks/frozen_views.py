"""Accuracy of a classifier on frozen embeddings of augmented views (FrozenFeatureClassifier).

Usage (from the repository root)::

    python benchmarks/frozen_views.py [--seeds 0 1 2] [--per-class 5 20] [--n-views 8]
                                      [--test-limit N] [--backbones efficientnet_lite0 ...]
                                      [--quick] [--json out.json] [--write-results [FILE]]

For each extractor (efficientnet_lite0 alone, and a ``FeatureUnion`` of
efficientnet_lite0/1/2, concatenated embeddings) two classifiers are fitted
on the same training images:

* ``extractor + LR``: ``FrozenFeatureClassifier(n_views=0)``, which is
  exactly ``make_pipeline(extractor, LogisticRegression(max_iter=1000))``;
* ``+ n views``: ``FrozenFeatureClassifier(n_views=8, random_state=seed)``:
  LogisticRegression also sees the embeddings of 8 random resized crops
  and flips of each training image.

Tasks: flowers, k images per class drawn for training (``np.random.default_rng(seed).choice``
within each class), all the other images are the test set (``--test-limit N``: a fixed
random N of them), mean ± std over the seeds; hymenoptera, train -> val.

Embeddings are kept in an :class:`~sktransfer.storage.EmbeddingStore` in
``benchmarks/.cache/store`` (git-ignored), keyed by image content and
extractor settings: the first run embeds every test image once per
backbone, reruns only the views not stored before (the views of a seed are
the same on every run, so a full rerun embeds nothing). The fit times
reported therefore depend on what the store held; the column says how many
embeddings each fit computed or read.

``--quick``: efficientnet_lite0 only, seed 0, flowers 5/class scored on 200
test images, 2 views, hymenoptera on 40 training and 40 validation images.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import _results
import numpy as np
from _splits import load_folder, split_per_class

CACHE = Path(__file__).resolve().parent / ".cache"
UNION = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def make_extractor(backbones):
    from sklearn.pipeline import FeatureUnion

    from sktransfer import PretrainedFeatureExtractor

    store = CACHE / "store"
    if len(backbones) == 1:
        return PretrainedFeatureExtractor(model=backbones[0], cache=store)
    return FeatureUnion([(name, PretrainedFeatureExtractor(model=name, cache=store)) for name in backbones])


def fit_score(backbones, n_views, seed, X_train, y_train, X_test, y_test):
    from sktransfer import FrozenFeatureClassifier

    clf = FrozenFeatureClassifier(extractor=make_extractor(backbones), n_views=n_views, random_state=seed)
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    return float(np.mean(clf.predict(X_test) == y_test)), fit_s


def summarise(accs, fits, n_train, n_test):
    return {
        "accs": accs,
        "mean": float(np.mean(accs)),
        "std": float(np.std(accs)),
        "fit_s_median": statistics.median(fits),
        "n_train": n_train,
        "n_test": n_test,
    }


def run(args, extractors, methods):
    out = {}
    paths, labels = load_folder("flowers")
    for k in args.per_class:
        for ext_name, backbones in extractors.items():
            for method, n_views in methods.items():
                accs, fits = [], []
                for seed in args.seeds:
                    tr, te = split_per_class(labels, k, seed, args.test_limit)
                    acc, fit_s = fit_score(backbones, n_views, seed, paths[tr], labels[tr], paths[te], labels[te])
                    accs.append(acc)
                    fits.append(fit_s)
                    print(
                        f"flowers {k}/class {ext_name} {method} seed {seed}: {acc:.4f} (fit {fit_s:.0f} s)", flush=True
                    )
                out[(f"flowers {k}/class", ext_name, method)] = summarise(accs, fits, len(tr), len(te))
    X_train, y_train = load_folder("hymenoptera", "train")
    X_val, y_val = load_folder("hymenoptera", "val")
    if args.quick:
        pick = np.random.default_rng(0)
        tr = pick.choice(len(X_train), 40, replace=False)
        va = pick.choice(len(X_val), 40, replace=False)
        X_train, y_train, X_val, y_val = X_train[tr], y_train[tr], X_val[va], y_val[va]
    for ext_name, backbones in extractors.items():
        for method, n_views in methods.items():
            accs, fits = [], []
            for seed in args.seeds:
                acc, fit_s = fit_score(backbones, n_views, seed, X_train, y_train, X_val, y_val)
                accs.append(acc)
                fits.append(fit_s)
                if n_views == 0:
                    break  # no randomness: one fit is every seed's
            print(f"hymenoptera {ext_name} {method}: {np.mean(accs):.4f}", flush=True)
            out[("hymenoptera train->val", ext_name, method)] = summarise(accs, fits, len(X_train), len(X_val))
    return out


def markdown(results, seeds):
    lines = [
        f"Seeds {list(seeds)} (the flowers split and the views); LogisticRegression(max_iter=1000) on "
        "the embeddings; fit time includes embedding the training images and their views "
        "(stored embeddings are read, not computed).",
        "",
        "| task | extractor | classifier | accuracy mean ± std | fit s (median) | n train | n test |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for (task, ext_name, method), r in results.items():
        lines.append(
            f"| {task} | {ext_name} | {method} | {r['mean']:.4f} ± {r['std']:.4f} | "
            f"{r['fit_s_median']:.1f} | {r['n_train']} | {r['n_test']} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--n-views", type=int, default=8)
    parser.add_argument(
        "--test-limit", type=int, default=None, help="score flowers on a fixed random subset of this many test images"
    )
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=None,
        help="extractors to run, by backbone; 'union' is the FeatureUnion of lite0/1/2",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    parser.add_argument("--json", default=None)
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.per_class, args.n_views = [0], [5], 2
        args.test_limit = args.test_limit or 200
        args.backbones = args.backbones or ["efficientnet_lite0"]
    chosen = args.backbones or ["efficientnet_lite0", "union"]
    extractors = {}
    for name in chosen:
        if name == "union":
            extractors["lite0+lite1+lite2 (FeatureUnion)"] = UNION
        else:
            extractors[name] = (name,)
    methods = {"extractor + LR": 0, f"+ {args.n_views} views": args.n_views}
    started = _results.start_run()
    results = run(args, extractors, methods)
    table = markdown(results, args.seeds)
    title = "Frozen features with augmented views (FrozenFeatureClassifier)"
    _results.finish_run(args, title, table, started, results)


if __name__ == "__main__":
    main()

"""Fine-tuning benchmarks: hymenoptera, flowers, grid over freeze depth.

Usage (from the repository root)::

    python benchmarks/finetune.py hymenoptera [--repeats 3] [--uncached]
    python benchmarks/finetune.py flowers [--per-class 20] [--test-size 500]

The grid over ``unfreeze`` x ``lr_decay`` (flowers, cv=3) and its plot are
``examples/finetune_grid.py``.

Data: ``$SKTRANSFER_DATA`` or ``../shared/data`` (hymenoptera/, flowers/).
Backbone: the offline ``efficientnet_lite0`` with ImageNet weights; all
FineTuneClassifier parameters at their defaults unless stated.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def data_dir():
    env = os.environ.get("SKTRANSFER_DATA")
    for path in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data"]:
        if (path / "hymenoptera").is_dir():
            return path
    sys.exit("data not found: set SKTRANSFER_DATA to the folder holding hymenoptera/ and flowers/")


def phase_times(clf):
    """Seconds per phase (caching included) of the validated run and of the refit."""
    runs = [("", clf.history)]
    if getattr(clf, "validation_history_", None) is not None:
        runs = [("", clf.validation_history_), ("refit_", clf.history)]
    out = {}
    for prefix, hist in runs:
        for row in hist:
            key = f"{prefix}phase{row['phase']}_s"
            out[key] = out.get(key, 0.0) + row["dur"] + row.get("cache_dur", 0.0)
    out = {k: round(v, 1) for k, v in out.items()}
    out["best_epoch"] = getattr(clf, "best_epoch_", None)
    return out


def run_hymenoptera(args):
    from sktransfer import FineTuneClassifier
    from sktransfer.datasets import load_image_folder

    root = data_dir() / "hymenoptera"
    results = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        X_train, y_train = load_image_folder(root / "train")
        X_val, y_val = load_image_folder(root / "val")
        clf = FineTuneClassifier(random_state=r, verbose=args.verbose, cache_activations=not args.uncached,
                                 **json.loads(args.params))
        t_fit = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_s = time.perf_counter() - t_fit
        pred = clf.predict(X_val)
        acc = float(np.mean(pred == y_val))
        wall = time.perf_counter() - t0
        res = {"seed": r, "val_acc": round(acc, 4), "wall_s": round(wall, 1), "fit_s": round(fit_s, 1),
               "epochs": len(clf.history), **phase_times(clf)}
        if args.show_errors:
            res["errors"] = [f"{Path(p).parent.name}/{Path(p).name}" for p in np.asarray(X_val)[pred != y_val]]
        print(json.dumps(res), flush=True)
        results.append(res)
    print("median val_acc", statistics.median(r["val_acc"] for r in results),
          "median wall_s", statistics.median(r["wall_s"] for r in results))


def flowers_split(per_class, test_size, seed=0):
    from sktransfer.datasets import load_image_folder

    paths, labels = load_image_folder(data_dir() / "flowers")
    paths = np.asarray(paths)
    rng = np.random.default_rng(seed)
    train_idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                                for c in np.unique(labels)])
    rest = np.setdiff1d(np.arange(len(paths)), train_idx)
    test_idx = rng.choice(rest, min(test_size, len(rest)), replace=False) if test_size else rest
    return paths[train_idx].tolist(), labels[train_idx], paths[test_idx].tolist(), labels[test_idx]


def run_flowers(args):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sktransfer import FineTuneClassifier, PretrainedFeatureExtractor

    X_tr, y_tr, X_te, y_te = flowers_split(args.per_class, args.test_size)
    print(f"flowers: {len(X_tr)} train ({args.per_class}/class), {len(X_te)} test", flush=True)
    t0 = time.perf_counter()
    pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    acc = pipe.score(X_te, y_te)
    print(json.dumps({"method": "extractor+logreg", "test_acc": round(acc, 4),
                      "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)
    accs = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        clf = FineTuneClassifier(random_state=r, verbose=args.verbose, **json.loads(args.params)).fit(X_tr, y_tr)
        accs.append(clf.score(X_te, y_te))
        print(json.dumps({"method": "FineTuneClassifier", "seed": r, "test_acc": round(accs[-1], 4),
                          "wall_s": round(time.perf_counter() - t0, 1), **phase_times(clf)}), flush=True)
    print("FineTuneClassifier median test_acc", round(statistics.median(accs), 4))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["hymenoptera", "flowers"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--uncached", action="store_true", help="disable frozen-prefix caching")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--test-size", type=int, default=500, help="subsample of the flowers test set (0: all)")
    parser.add_argument("--params", default="{}", help="JSON of extra FineTuneClassifier parameters")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--show-errors", action="store_true", help="list the misclassified val images")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    {"hymenoptera": run_hymenoptera, "flowers": run_flowers}[args.task](args)


if __name__ == "__main__":
    main()

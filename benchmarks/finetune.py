"""Fine-tuning benchmarks: FineTuneClassifier settings on hymenoptera or flowers.

Usage (from the repository root)::

    python benchmarks/finetune.py hymenoptera [--repeats 3] [--params JSON [JSON ...]]
    python benchmarks/finetune.py flowers [--per-class 20] [--test-size 500] [--params ...]
    ... [--show-errors] [--verbose 1] [--quick] [--write-results [FILE]]

Each ``--params`` value is one setting, a JSON object of FineTuneClassifier
parameters (``{}``: the defaults); every setting is fitted with seeds
``0 .. repeats-1`` and becomes one row of the table, so settings compared in
one table ran back to back on the same machine. ``{"cache_activations":
false}`` measures what frozen-prefix caching saves. JSON cannot hold a
skorch split, so an integer ``train_split`` k stands for
``ValidSplit(k, stratified=True)``: ``{"train_split": 5}`` is the validated,
early-stopped run and its refit on all images (the default until the
defaults stopped holding a split out). On flowers the table
starts with ``PretrainedFeatureExtractor()`` + ``LogisticRegression`` on the
same split, for scale. ``--quick`` is a smoke run: one seed, one epoch, 32
training and 32 test images.

The fit seconds are split into the frozen-prefix pass (filling the
activation cache, ``cache_dur`` in the history: once per fit, on the
``engine``) and the rest (training epochs, validation, decoding).

hymenoptera: train (244 images) -> val (153). flowers: ``--per-class``
images per class for training (seed 0), a ``--test-size`` random subsample of
the rest for testing (0: all of it).

Data: the folder holding ``hymenoptera/`` and ``flowers/`` that
``sktransfer.datasets.find_data_dir`` finds (``$SKTRANSFER_DATA`` first).
Backbone: the offline ``efficientnet_lite0`` with ImageNet weights.
The grid over ``unfreeze`` x ``lr_decay`` and its plot are
``examples/finetune_grid.py``.
"""

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import _results
import numpy as np
import torch


def data_folder(name):
    from sktransfer.datasets import find_data_dir

    return Path(find_data_dir(name, required=True)) / name


def load_split(args):
    """(X_train, y_train, X_test, y_test) of the task."""
    from sktransfer.datasets import load_image_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hymenoptera's imageNotFound.gif is skipped
        if args.task == "hymenoptera":
            root = data_folder("hymenoptera")
            X_train, y_train = load_image_folder(root / "train")
            X_test, y_test = load_image_folder(root / "val")
            return X_train, y_train, X_test, y_test
        paths, labels = load_image_folder(data_folder("flowers"))
    paths = np.asarray(paths)
    rng = np.random.default_rng(0)
    train = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), args.per_class, replace=False) for c in np.unique(labels)]
    )
    rest = np.setdiff1d(np.arange(len(paths)), train)
    test = rng.choice(rest, min(args.test_size, len(rest)), replace=False) if args.test_size else rest
    return paths[train].tolist(), labels[train], paths[test].tolist(), labels[test]


def phase_times(clf):
    """Seconds per phase (caching included) of the validated run and of the refit."""
    runs = [("", clf.history)]
    if getattr(clf, "validation_history_", None) is not None:
        runs = [("", clf.validation_history_), ("refit ", clf.history)]
    out = {}
    for prefix, history in runs:
        for row in history:
            key = f"{prefix}phase {row['phase']}"
            out[key] = out.get(key, 0.0) + row["dur"] + row.get("cache_dur", 0.0)
    return out


def prefix_seconds(clf):
    """Seconds spent filling the activation cache (the frozen-prefix pass), validated run and refit."""
    histories = [h for h in (getattr(clf, "validation_history_", None), clf.history) if h is not None]
    return sum(row.get("cache_dur", 0.0) for history in histories for row in history)


def estimator_params(params):
    """The JSON setting as FineTuneClassifier parameters (an integer ``train_split`` k: k stratified folds)."""
    from skorch.dataset import ValidSplit

    params = dict(params)
    if isinstance(params.get("train_split"), int):
        params["train_split"] = ValidSplit(params["train_split"], stratified=True)
    return params


def run_setting(params, split, args):
    from sktransfer import FineTuneClassifier
    from sktransfer.finetune._fit_memo import FIT_MEMO

    X_train, y_train, X_test, y_test = split
    params = estimator_params(params)
    if args.quick:
        params = {"max_epochs": 1, **params}
    runs = []
    for seed in range(args.repeats):
        # Every fit starts cold, as a user's one fit does: fits in one process
        # on the same files otherwise share decoded images and activations.
        FIT_MEMO.clear()
        start = time.perf_counter()
        clf = FineTuneClassifier(random_state=seed, verbose=args.verbose, **params)
        clf.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        predicted = clf.predict(X_test)
        run = {
            "seed": seed,
            "accuracy": float(np.mean(predicted == np.asarray(y_test))),
            "wall_s": time.perf_counter() - start,
            "fit_s": fit_s,
            "prefix_s": prefix_seconds(clf),
            "engine": getattr(clf, "engine_", None),
            "epochs": len(clf.history),
            "best_epoch": getattr(clf, "best_epoch_", None),
            "phases": phase_times(clf),
            "errors": [f"{Path(p).parent.name}/{Path(p).stem}" for p in np.asarray(X_test)[predicted != y_test]],
        }
        print(json.dumps({k: v for k, v in run.items() if k != "errors"}, default=str), flush=True)
        runs.append(run)
    return runs


def baseline(split):
    """Frozen features + logistic regression on the same split, for scale."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sktransfer import PretrainedFeatureExtractor

    X_train, y_train, X_test, y_test = split
    start = time.perf_counter()
    pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=2000)).fit(X_train, y_train)
    return pipe.score(X_test, y_test), time.perf_counter() - start


def markdown(rows, split, args, base=None):
    n_train, n_test = len(split[0]), len(split[2])
    seeds = " / ".join(str(s) for s in range(args.repeats))
    lines = [
        f"{args.task}: {n_train} training images -> {n_test} test images; seeds {seeds}; "
        "wall = fit (decoding included) + prediction, median over the seeds; phase seconds of seed 0.",
        "",
        f"| setting (`FineTuneClassifier(**params)`) | accuracy, seeds {seeds} | median | wall s | fit s "
        "| of which prefix pass s | engine | epochs (best) | phase seconds |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    if base is not None:
        lines.append(
            f"| `PretrainedFeatureExtractor()` + `LogisticRegression(max_iter=2000)` (deterministic) "
            f"| {base[0]:.4f} | {base[0]:.4f} | {base[1]:.1f} | | | | | |"
        )
    for params, runs in rows:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in runs[0]["phases"].items())
        accuracies = " / ".join(f"{r['accuracy']:.4f}" for r in runs)
        lines.append(
            f"| `{json.dumps(params)}` | {accuracies} "
            f"| {statistics.median(r['accuracy'] for r in runs):.4f} "
            f"| {statistics.median(r['wall_s'] for r in runs):.1f} "
            f"| {statistics.median(r['fit_s'] for r in runs):.1f} "
            f"| {statistics.median(r['prefix_s'] for r in runs):.1f} | {runs[0]['engine']} "
            f"| {runs[0]['epochs']} ({runs[0]['best_epoch']}) | {phases} |"
        )
    if args.show_errors:
        for params, runs in rows:
            errors = ", ".join(runs[0]["errors"]) or "none"
            lines += ["", f"Misclassified by `{json.dumps(params)}`, seed 0: {errors}."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["hymenoptera", "flowers"])
    parser.add_argument("--repeats", type=int, default=1, help="seeds 0 .. repeats-1")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--test-size", type=int, default=500, help="subsample of the flowers test set (0: all)")
    parser.add_argument("--params", nargs="+", default=["{}"], help="one JSON object of parameters per setting")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--show-errors", action="store_true", help="list the misclassified test images")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1 epoch, 32 train / 32 test images")
    _results.add_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    settings = [json.loads(text) for text in args.params]
    split = load_split(args)
    if args.quick:
        args.repeats = 1
        rng = np.random.default_rng(0)
        train, test = (rng.permutation(len(part))[:32] for part in (split[0], split[2]))
        split = tuple(
            np.asarray(part)[index].tolist() if k % 2 == 0 else np.asarray(part)[index]
            for k, (part, index) in enumerate(zip(split, (train, train, test, test)))
        )
    base = baseline(split) if args.task == "flowers" else None
    rows = [(params, run_setting(params, split, args)) for params in settings]
    table = markdown(rows, split, args, base)
    print()
    print(table)
    _results.write(args.write_results, f"Fine-tuning: {args.task}", table)


if __name__ == "__main__":
    main()

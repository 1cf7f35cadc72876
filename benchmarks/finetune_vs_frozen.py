"""FineTuneClassifier() against FrozenFeatureClassifier(), both with their defaults, on the same splits.

Usage (from the repository root)::

    python benchmarks/finetune_vs_frozen.py [--seeds 0 1 2] [--tasks hymenoptera flowers20]
        [--params JSON] [--write-results [FILE]]

Every seed fits both classifiers, back to back, on the same training images
and scores them on the same test images:

* hymenoptera: train/ (244 images) -> val/ (153); the seed is the
  classifiers' ``random_state`` (the views of the frozen recipe, the
  shuffling and the internal check's folds of the fine-tuner);
* flowers20: 20 images per class drawn with the seed
  (``_splits.split_per_class``, as ``fewshot.py`` and ``accuracy.py``),
  tested on every other flower image; the seed is also ``random_state``.

Fit seconds include decoding and, for the fine-tuner, its internal check
(one fine-tuning per fold, then the final fit); every fine-tuner fit starts
cold (the fit memo cleared), as a user's one fit does. ``--params`` gives
other FineTuneClassifier parameters (JSON) for a comparison run. The
fine-tuner's columns say what its check kept (``probe``: the logistic
regression on its frozen network; ``recipe``: the frozen recipe,
``FrozenFeatureClassifier(random_state=seed)``; or ``fine-tuned``) and
the cross-validated accuracies of the three on the training images, with
the p-values of McNemar's test that decided (the recipe is kept unless the
probe or fine-tuning beats it at 5%).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import _results
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _splits import load_folder, split_per_class  # noqa: E402


def task_split(task, seed):
    """(X_train, y_train, X_test, y_test) of `task` for `seed`."""
    if task == "hymenoptera":
        X_train, y_train = load_folder("hymenoptera", "train")
        X_test, y_test = load_folder("hymenoptera", "val")
        return list(X_train), y_train, list(X_test), y_test
    paths, labels = load_folder("flowers")
    train, test = split_per_class(labels, 20, seed)
    return list(paths[train]), labels[train], list(paths[test]), labels[test]


def timed_fit_score(make, split):
    X_train, y_train, X_test, y_test = split
    start = time.perf_counter()
    clf = make().fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    accuracy = float(np.mean(clf.predict(X_test) == np.asarray(y_test)))
    return clf, accuracy, fit_s


def run(task, seed, params):
    from sktransfer import FineTuneClassifier, FrozenFeatureClassifier
    from sktransfer.finetune._fit_memo import FIT_MEMO

    split = task_split(task, seed)
    _, frozen_acc, frozen_s = timed_fit_score(lambda: FrozenFeatureClassifier(random_state=seed), split)
    FIT_MEMO.clear()
    tuner, tuned_acc, tuned_s = timed_fit_score(lambda: FineTuneClassifier(random_state=seed, **params), split)
    scores = tuner.check_scores_ or {}
    row = {
        "task": task,
        "seed": seed,
        "n_train": len(split[0]),
        "n_test": len(split[2]),
        "frozen_accuracy": frozen_acc,
        "frozen_fit_s": frozen_s,
        "finetune_accuracy": tuned_acc,
        "finetune_fit_s": tuned_s,
        "chose": "fine-tuned" if tuner.fine_tuned_ else ("recipe" if tuner.frozen_ is not None else "probe"),
        "cv_probe": scores.get("probe_accuracy"),
        "cv_frozen": scores.get("frozen_accuracy"),
        "cv_fine_tuned": scores.get("fine_tuned_accuracy"),
        "p_probe": scores.get("probe_p_value"),
        "p_fine_tuned": scores.get("fine_tuned_p_value"),
        "probe_C": tuner.probe_C_,
        "engine": tuner.engine_,
    }
    print(json.dumps(row), flush=True)
    return row


def _cv(value):
    return "-" if value is None else f"{value:.3f}"


def _p(value):
    return "-" if value is None else f"{value:.2g}"


def markdown(rows, params):
    setting = f"`FineTuneClassifier(**{json.dumps(params)})`" if params else "`FineTuneClassifier()`"
    lines = [
        f"Both classifiers with their defaults (the fine-tuner: {setting}), fitted back to back on the same "
        "training images; accuracy on the same test images. Fit seconds include decoding and the fine-tuner's "
        "internal check (which fits the frozen recipe too). Check: what the fine-tuner kept (the probe on its "
        "frozen network, the frozen recipe `FrozenFeatureClassifier(random_state=seed)` or the fine-tuned "
        "network), the cross-validated accuracy of each on the training images, and the p-values of McNemar's "
        "test that the probe / fine-tuning is more accurate than the recipe (kept unless one is below 0.05).",
        "",
        "| task | seed | n train -> test | `FrozenFeatureClassifier()` accuracy | fit s "
        "| `FineTuneClassifier()` accuracy | fit s | check kept | check CV probe / recipe / fine-tuned "
        "| p probe / fine-tuned | probe C |",
        "|---|---:|---|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['seed']} | {r['n_train']} -> {r['n_test']} | {r['frozen_accuracy']:.4f} "
            f"| {r['frozen_fit_s']:.1f} | {r['finetune_accuracy']:.4f} | {r['finetune_fit_s']:.1f} | {r['chose']} "
            f"| {_cv(r['cv_probe'])} / {_cv(r['cv_frozen'])} / {_cv(r['cv_fine_tuned'])} "
            f"| {_p(r['p_probe'])} / {_p(r['p_fine_tuned'])} | {r['probe_C']:g} |"
        )
    lines += ["", "| task | median accuracy frozen | median accuracy fine-tuner | median fit s frozen | fine-tuner |"]
    lines.append("|---|---:|---:|---:|---:|")
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]

        def med(key, mine=mine):
            return statistics.median(r[key] for r in mine)

        lines.append(
            f"| {task} | {med('frozen_accuracy'):.4f} | {med('finetune_accuracy'):.4f} "
            f"| {med('frozen_fit_s'):.1f} | {med('finetune_fit_s'):.1f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--tasks", nargs="+", default=["hymenoptera", "flowers20"], choices=["hymenoptera", "flowers20"]
    )
    parser.add_argument("--params", default="{}", help="FineTuneClassifier parameters, JSON (default: the defaults)")
    _results.add_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    params = json.loads(args.params)
    rows = [run(task, seed, params) for task in args.tasks for seed in args.seeds]
    table = markdown(rows, params)
    print()
    print(table)
    _results.write(args.write_results, "Fine-tuning against frozen features: the defaults", table)


if __name__ == "__main__":
    main()

"""Accuracy against freeze depth: a grid over ``unfreeze`` x ``lr_decay``.
=======================================================================

Fine-tunes the offline efficientnet_lite0 on flowers (20 images per class,
fixed seed) with ``GridSearchCV(cv=3)`` over how many of the last layer
groups train (0 = head only) and the per-group learning-rate decay, then
plots the cross-validated accuracy against the number of unfrozen groups.

Usage (from the repository root)::

    python examples/finetune_grid.py [--per-class 20] [--unfreeze 0 1 2 3] [--lr-decay 0.1 0.3]
                                     [--write-results [FILE]]

Writes ``examples/output/finetune_grid.png`` (and ``.json`` with the numbers);
``--write-results`` also writes the table, with frozen features +
LogisticRegression scored on the same folds for scale, into
``benchmarks/RESULTS.md``.
Data: the ``flowers/`` folder that ``sktransfer.datasets.find_data_dir``
finds (``$SKTRANSFER_DATA`` first).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sktransfer import FineTuneClassifier, PretrainedFeatureExtractor
from sktransfer.datasets import find_data_dir, load_image_folder

# This example's folder: sphinx-gallery runs the examples from it and does not set __file__.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

ROOT = HERE.parent


def results_table(search, args, wall, baseline, n_images):
    res = search.cv_results_
    cell = {
        (p["unfreeze"], p["lr_decay"]): (m, sd)
        for p, m, sd in zip(res["params"], res["mean_test_score"], res["std_test_score"])
    }
    lines = [
        f"{len(args.unfreeze) * len(args.lr_decay)} settings x 3 folds on {n_images} flowers "
        f"images ({args.per_class} per class, seed {args.seed}) in {wall:.0f} s wall; "
        f"best {search.best_params_}. Mean ± std of the 3-fold CV accuracy:",
        "",
        "| unfreeze | " + " | ".join(f"lr_decay={d}" for d in args.lr_decay) + " |",
        "|---|" + "---|" * len(args.lr_decay),
    ]
    for depth in args.unfreeze:
        cells = [f"{cell[depth, d][0]:.3f} ± {cell[depth, d][1]:.3f}" for d in args.lr_decay]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`PretrainedFeatureExtractor()` + `LogisticRegression(max_iter=2000)` on the same folds: "
        + " / ".join(f"{s:.3f}" for s in baseline)
        + f" (mean {np.mean(baseline):.3f}).",
    ]
    return "\n".join(lines)


def main():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # RESULTS.md writer
    import _results

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--unfreeze", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--lr-decay", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--seed", type=int, default=0)
    _results.add_argument(parser)
    args = parser.parse_args()

    paths, labels = load_image_folder(Path(find_data_dir("flowers", required=True)) / "flowers")
    rng = np.random.default_rng(args.seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), args.per_class, replace=False) for c in np.unique(labels)]
    )
    X, y = [paths[i] for i in idx], labels[idx]

    grid = {"unfreeze": args.unfreeze, "lr_decay": args.lr_decay}
    folds = StratifiedKFold(3, shuffle=True, random_state=args.seed)
    search = GridSearchCV(FineTuneClassifier(random_state=args.seed, verbose=0), grid, cv=folds, refit=False)
    t0 = time.perf_counter()
    search.fit(X, y)
    wall = time.perf_counter() - t0
    print(
        f"{len(X)} images, {len(search.cv_results_['params'])} settings x 3 folds in {wall:.0f} s; "
        f"best {search.best_params_} ({search.best_score_:.3f})"
    )

    res = search.cv_results_
    fig, ax = plt.subplots(figsize=(6, 4))
    for decay in args.lr_decay:
        rows = [i for i, p in enumerate(res["params"]) if p["lr_decay"] == decay]
        depth = [res["params"][i]["unfreeze"] for i in rows]
        ax.errorbar(
            depth,
            res["mean_test_score"][rows],
            yerr=res["std_test_score"][rows],
            marker="o",
            capsize=3,
            label=f"lr_decay={decay}",
        )
    ax.set_xlabel("unfreeze (last layer groups trained after the head phase)")
    ax.set_ylabel("3-fold CV accuracy")
    ax.set_xticks(args.unfreeze)
    ax.set_title(f"FineTuneClassifier on flowers, {args.per_class} images/class")
    ax.legend()
    fig.tight_layout()
    out = ROOT / "examples" / "output"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "finetune_grid.png", dpi=120)
    (out / "finetune_grid.json").write_text(
        json.dumps(
            {
                "wall_s": round(wall, 1),
                "n_images": len(X),
                "best_params": search.best_params_,
                "params": res["params"],
                "mean_test_score": res["mean_test_score"].round(4).tolist(),
                "std_test_score": res["std_test_score"].round(4).tolist(),
            },
            indent=1,
        )
    )
    print(f"wrote {out / 'finetune_grid.png'}")
    if args.write_results:
        pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=2000))
        baseline = cross_val_score(pipe, X, y, cv=folds)
        _results.write(
            args.write_results,
            "Fine-tuning: grid over unfreeze x lr_decay",
            results_table(search, args, wall, baseline, len(y)),
        )


if __name__ == "__main__":
    main()

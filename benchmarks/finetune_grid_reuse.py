"""What a grid search over ``unfreeze`` saves by sharing work between its fits.

    python benchmarks/finetune_grid_reuse.py [--repeats 1] [--write-results [FILE]]

``GridSearchCV(FineTuneClassifier(), {"unfreeze": [0, 1, 2]}, cv=2)`` on the
hymenoptera training images (efficientnet_lite0, ImageNet weights), once with
the process-wide memo of decoded images and frozen-prefix activations
(the default, see ``sktransfer.finetune.set_fit_memo_limit``) and once with it
disabled, back to back. The scores must be identical.

The memo is switched with the public ``set_fit_memo_limit`` (0 bytes disables
it); the internal ``FIT_MEMO.clear()`` and ``FIT_MEMO.hits`` start each run
empty and count what it shared.
"""

import argparse
import time
import warnings
from pathlib import Path

import _results
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sktransfer import FineTuneClassifier
from sktransfer.datasets import find_data_dir, load_image_folder
from sktransfer.finetune import set_fit_memo_limit
from sktransfer.finetune._fit_memo import FIT_MEMO


def run_grid(paths, labels, memo):
    FIT_MEMO.clear()
    set_fit_memo_limit(1024**3 if memo else 0)
    grid = GridSearchCV(
        FineTuneClassifier(random_state=0, verbose=0),
        {"unfreeze": [0, 1, 2]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
        refit=False,
    )
    start = time.perf_counter()
    grid.fit(paths, labels)
    return time.perf_counter() - start, grid.cv_results_["mean_test_score"], FIT_MEMO.hits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="use only N images (a quick check)")
    _results.add_argument(parser)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="skipped 1 file")
    root = Path(find_data_dir("hymenoptera", required=True)) / "hymenoptera"
    paths, labels = load_image_folder(root / "train")
    # Files are sorted by class: an evenly spaced subset keeps both classes.
    step = max(1, len(paths) // args.limit) if args.limit else 1
    paths, labels = list(paths)[::step][: args.limit], labels[::step][: args.limit]
    rows = {True: [], False: []}
    for _ in range(args.repeats):
        for memo in (False, True):
            rows[memo].append(run_grid(paths, labels, memo))
    off = np.median([r[0] for r in rows[False]])
    on = np.median([r[0] for r in rows[True]])
    lines = [
        f"{len(paths)} hymenoptera training images; medians over {args.repeats} repeat(s).",
        "",
        "| memo | wall s (median) | mean CV accuracy per unfreeze 0/1/2 | memo hits |",
        "|---|---:|---|---:|",
    ]
    for memo, t in ((False, off), (True, on)):
        scores = " / ".join(f"{s:.4f}" for s in rows[memo][-1][1])
        lines.append(f"| {'on (default)' if memo else 'off'} | {t:.1f} | {scores} | {rows[memo][-1][2]} |")
    same = all(np.allclose(a[1], b[1]) for a, b in zip(rows[True], rows[False]))
    lines += ["", f"Speed-up {off / on:.2f}x; identical scores: {same}."]
    table = "\n".join(lines)
    print(table)
    _results.write(args.write_results, "Fine-tuning: grid search sharing work between fits", table)


if __name__ == "__main__":
    main()

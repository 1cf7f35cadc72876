"""What a grid search over ``unfreeze`` saves by sharing work between its fits.

    python benchmarks/finetune_grid_reuse.py [--repeats 1]

``GridSearchCV(FineTuneClassifier(), {"unfreeze": [0, 1, 2]}, cv=2)`` on the
hymenoptera training images (efficientnet_lite0, ImageNet weights), once with
the process-wide memo of decoded images and frozen-prefix activations
(``sktransfer.finetune._data.FIT_MEMO``, the default) and once with it
disabled, back to back. The scores must be identical.
"""

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sktransfer import FineTuneClassifier
from sktransfer.finetune._data import FIT_MEMO
from sktransfer.datasets import load_image_folder


def data_root():
    for root in [os.environ.get("SKTRANSFER_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data"]:
        if root and (Path(root) / "hymenoptera").is_dir():
            return Path(root)
    raise SystemExit("hymenoptera not found: set SKTRANSFER_DATA to a folder holding hymenoptera/")


def run_grid(paths, labels, memo):
    FIT_MEMO.clear()
    FIT_MEMO.max_entries = 32 if memo else 0
    grid = GridSearchCV(
        FineTuneClassifier(random_state=0, verbose=0), {"unfreeze": [0, 1, 2]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0), refit=False,
    )
    start = time.perf_counter()
    grid.fit(paths, labels)
    return time.perf_counter() - start, grid.cv_results_["mean_test_score"], FIT_MEMO.hits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="skipped 1 file")
    paths, labels = load_image_folder(data_root() / "hymenoptera" / "train")
    paths = list(paths)
    rows = {True: [], False: []}
    for _ in range(args.repeats):
        for memo in (False, True):
            rows[memo].append(run_grid(paths, labels, memo))
    off = np.median([r[0] for r in rows[False]])
    on = np.median([r[0] for r in rows[True]])
    print("| memo | wall s (median) | mean CV accuracy per unfreeze 0/1/2 | memo hits |")
    print("|---|---:|---|---:|")
    for memo, t in ((False, off), (True, on)):
        scores = " / ".join(f"{s:.4f}" for s in rows[memo][-1][1])
        print(f"| {'on' if memo else 'off'} | {t:.1f} | {scores} | {rows[memo][-1][2]} |")
    same = all(np.allclose(a[1], b[1]) for a, b in zip(rows[True], rows[False]))
    print(f"\nspeed-up {off / on:.2f}x; identical scores: {same}")


if __name__ == "__main__":
    main()

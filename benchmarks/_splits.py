"""The data and the seeded splits the accuracy benchmarks share.

``accuracy.py``, ``frozen_views.py`` and ``fewshot.py`` compare their
figures seed by seed (seed 0 of one is seed 0 of the others), so they draw
their k-per-class training images, and any smaller test set, from this one
function.
"""

import warnings
from pathlib import Path

import numpy as np


def load_folder(name, *parts):
    """``(paths, labels)`` of data set `name` (a folder under the shared data), or of its sub-folder `parts`."""
    from sktransfer.datasets import find_data_dir, load_image_folder

    root = Path(find_data_dir(name, required=True)) / name
    with warnings.catch_warnings():  # hymenoptera's imageNotFound.gif is skipped, as intended
        warnings.simplefilter("ignore")
        paths, labels = load_image_folder(root.joinpath(*parts))
    return np.asarray(paths, dtype=object), np.asarray(labels)


def split_per_class(labels, k, seed, test_limit=None):
    """``(train indices, test indices)``: `k` images of each class drawn with `seed`, the rest to test.

    With `test_limit`, the test set is a seeded subset of that many images,
    the same for every method of a seed, so differences are the methods'.
    """
    rng = np.random.default_rng(seed)
    train = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        train[rng.choice(idx, size=k, replace=False)] = True
    test = np.flatnonzero(~train)
    if test_limit is not None and test_limit < len(test):
        test = np.sort(np.random.default_rng(10_000 + seed).choice(test, size=test_limit, replace=False))
    return np.flatnonzero(train), test

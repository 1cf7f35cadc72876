"""The cross-validated accuracies of ``rank_transfer``: k-NN and linear probe, and the folds they use."""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, StratifiedKFold, check_cv, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from .._typing import CrossValidator, CVLike, RandomStateLike

__all__ = ["CV_SCORES", "cv_accuracy", "fold_plan", "make_cv"]

#: The scores computed on folds.
CV_SCORES = ("knn", "linear")
# The folds of the k-NN and linear-probe accuracies when the classes allow them.
_DEFAULT_FOLDS = 5


def _knn(n_neighbors=5):
    # Cosine neighbours: L2-normalised rows under the Euclidean metric.
    return make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=n_neighbors))


def _linear_probe():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def make_cv(cv: CVLike | None, y: ArrayLike, random_state: RandomStateLike) -> CrossValidator:
    """The splitter of ``cv`` as given: an int is that many shuffled stratified folds, which every class must fill."""
    if isinstance(cv, Integral):
        smallest = int(np.min(np.unique(y, return_counts=True)[1]))
        if cv < 2 or smallest < cv:
            raise ValueError(
                f"cv={cv} needs at least cv (>= 2) samples of every class; the smallest class has {smallest} "
                "(cv=None chooses the folds the classes allow)"
            )
        return StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=random_state)
    return check_cv(cv, y, classifier=True)


def fold_plan(cv, y, random_state, cv_scores):
    """The splitter of each fold-based score, and a note for each one not computed as ``cv=5`` would.

    ``cv=None`` fits the folds to the smallest class, so that a target set
    with few images per class is still ranked: up to 5 stratified folds
    when every class has 2 images or more; otherwise k-NN leave-one-out
    (a class seen once then counts as a miss) and the linear probe skipped,
    since no fold could train and test it. Any other ``cv`` is used as given.
    """
    if not cv_scores:
        return {}, {}
    if cv is not None:
        splitter = make_cv(cv, y, random_state)
        return dict.fromkeys(cv_scores, splitter), {}
    smallest = int(np.min(np.unique(y, return_counts=True)[1]))
    if smallest >= 2:
        n_splits = min(_DEFAULT_FOLDS, smallest)
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        notes = {}
        if n_splits < _DEFAULT_FOLDS:
            notes = dict.fromkeys(cv_scores, f"{n_splits} folds, as the smallest class has {smallest} images")
        return dict.fromkeys(cv_scores, splitter), notes
    splitters, notes = {}, {}
    if "knn" in cv_scores:
        splitters["knn"] = LeaveOneOut()
        notes["knn"] = "leave-one-out, as a class has a single image (it counts as a miss)"
    if "linear" in cv_scores:
        splitters["linear"] = None
        notes["linear"] = "skipped: a class has a single image, which no fold can both train and test on"
    return splitters, notes


def _leave_one_out_knn_accuracy(F, y, n_neighbors=5):
    """Leave-one-out accuracy of the cosine k-NN from one neighbour search, not one fit per image."""
    rows = Normalizer().fit_transform(F)
    k = min(n_neighbors, len(y) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(rows).kneighbors(rows, return_distance=False)
    _, codes = np.unique(y, return_inverse=True)
    n_correct = 0
    for i, found in enumerate(neighbours):
        # Leave the image itself out (not always first when another image is at distance 0).
        others = found[found != i][:k]
        n_correct += int(np.bincount(codes[others]).argmax() == codes[i])
    return n_correct / len(y)


def cv_accuracy(score, F, y, splitter):
    """Mean accuracy over the folds of `splitter` of the ``"knn"`` or ``"linear"`` classifier on features `F`."""
    if score == "knn" and isinstance(splitter, LeaveOneOut):
        return _leave_one_out_knn_accuracy(F, y)
    if score == "knn":
        # Never more neighbours than the smallest training fold holds.
        smallest_train = min(len(train) for train, _ in splitter.split(F, y))
        model = _knn(min(5, smallest_train))
    else:
        model = _linear_probe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(np.mean(cross_val_score(model, F, y, cv=splitter, scoring="accuracy")))

"""Cross-validation of a classifier on the embeddings of images and of their views.

``cross_val_score(FrozenFeatureClassifier(), ...)`` would embed every
training image and its views once per fold. The embeddings do not depend on
the fold (the network is frozen), only the classifier does: so
:class:`FrozenFeatureClassifier` computes them once and fits the classifier
once per fold here. The folds split images, not rows: every view of an
image is on the same side as the image, and a held-out image is scored on
its centre-crop embedding, as ``predict`` sees it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import check_cv

from ..utils._classes import align_proba


def cross_validate_views(classifier, cv, rows, row_labels, row_image, labels, fit_params):
    """Out-of-fold accuracy, log-loss and predictions of ``classifier`` over the images.

    Parameters
    ----------
    classifier : classifier
        Unfitted; cloned for each fold.
    cv : int, cross-validation generator or iterable
        Splits the images (``labels`` has one entry per image), as for
        :func:`sklearn.model_selection.check_cv` with a classifier.
    rows, row_labels, row_image : ndarray
        The embeddings the classifier is fitted on, their labels, and the
        index of the image each row comes from. The first ``len(labels)``
        rows are the images' centre crops, in order.
    labels : ndarray
        Each image's label.
    fit_params : dict
        ``sample_weight`` and ``groups`` per row, subset with the rows.

    Returns
    -------
    scores : dict
        ``accuracy`` and ``log_loss`` over the held-out images of every
        split (log-loss NaN when the classifier has no ``predict_proba``),
        and ``n_splits``.
    predictions : ndarray or None
        Each image's predicted label when it was held out, as
        :func:`~sklearn.model_selection.cross_val_predict` gives them;
        None unless the splits hold out every image exactly once.
    """
    classes = np.unique(labels)
    splitter = check_cv(cv, labels, classifier=True)
    has_proba = hasattr(classifier, "predict_proba")
    hits, loss, n_scored, n_splits = 0, 0.0, 0, 0
    predictions, times_held_out = np.empty_like(labels), np.zeros(len(labels), dtype=int)
    for train, test in splitter.split(np.zeros((len(labels), 1)), labels):
        keep = np.isin(row_image, train)
        fitted = clone(classifier).fit(
            rows[keep], row_labels[keep], **{name: np.asarray(value)[keep] for name, value in fit_params.items()}
        )
        predicted = fitted.predict(rows[test])
        hits += int(np.sum(predicted == labels[test]))
        predictions[test] = predicted
        np.add.at(times_held_out, test, 1)
        if has_proba:
            proba = align_proba(fitted.predict_proba(rows[test]), fitted.classes_, classes)
            loss += log_loss(labels[test], proba, labels=classes, normalize=False)
        n_scored += len(test)
        n_splits += 1
    scores = {
        "accuracy": hits / n_scored,
        "log_loss": loss / n_scored if has_proba else float("nan"),
        "n_splits": n_splits,
    }
    return scores, predictions if np.all(times_held_out == 1) else None

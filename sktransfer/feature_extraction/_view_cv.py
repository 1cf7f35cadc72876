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


def _proba_columns(proba, fold_classes, classes):
    """``proba`` over ``fold_classes`` as columns of ``classes`` (a class the fold never saw: 0)."""
    out = np.zeros((len(proba), len(classes)))
    out[:, np.searchsorted(classes, fold_classes)] = proba
    # In float64, rows of a float32 model's probabilities sum to 1 only to
    # float32 precision, which log_loss warns about.
    return out / out.sum(axis=1, keepdims=True)


def cross_validate_views(classifier, cv, rows, row_labels, row_image, labels, fit_params):
    """Out-of-fold accuracy and log-loss of ``classifier`` over the images, as a dict.

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
    dict
        ``accuracy`` and ``log_loss`` over the held-out images of every
        split (log-loss NaN when the classifier has no ``predict_proba``),
        and ``n_splits``.
    """
    classes = np.unique(labels)
    splitter = check_cv(cv, labels, classifier=True)
    has_proba = hasattr(classifier, "predict_proba")
    hits, loss, n_scored, n_splits = 0, 0.0, 0, 0
    for train, test in splitter.split(np.zeros((len(labels), 1)), labels):
        keep = np.isin(row_image, train)
        fitted = clone(classifier).fit(
            rows[keep], row_labels[keep], **{name: np.asarray(value)[keep] for name, value in fit_params.items()}
        )
        hits += int(np.sum(fitted.predict(rows[test]) == labels[test]))
        if has_proba:
            proba = _proba_columns(fitted.predict_proba(rows[test]), fitted.classes_, classes)
            loss += log_loss(labels[test], proba, labels=classes, normalize=False)
        n_scored += len(test)
        n_splits += 1
    return {
        "accuracy": hits / n_scored,
        "log_loss": loss / n_scored if has_proba else float("nan"),
        "n_splits": n_splits,
    }

"""Probabilities of a model fitted on some of the classes, as columns of all of them."""

from __future__ import annotations

import numpy as np


def align_proba(proba, fitted_classes, classes) -> np.ndarray:
    """``proba`` (columns ``fitted_classes``) as float64 columns of ``classes``; a class never fitted: 0.

    A model fitted on a fold, or a contender fitted apart, knows only the
    classes it saw, in its own order. Every one of ``fitted_classes`` must be
    in ``classes``. Rows are rescaled to sum to 1: a float32 model's
    probabilities sum to 1 only to float32 precision, which ``log_loss``
    warns about in float64.

    Examples
    --------
    >>> from sktransfer.utils._classes import align_proba
    >>> align_proba([[0.25, 0.75]], ["bee", "ant"], ["ant", "bee", "wasp"]).tolist()
    [[0.75, 0.25, 0.0]]
    """
    column = {label: i for i, label in enumerate(np.asarray(classes).tolist())}
    out = np.zeros((len(proba), len(column)))
    out[:, [column[label] for label in np.asarray(fitted_classes).tolist()]] = proba
    return out / out.sum(axis=1, keepdims=True)

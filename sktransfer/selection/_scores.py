"""Transferability scores: how well do these features suit these labels?

Each score looks at features extracted once, with no network training:
LogME (the evidence of a Bayesian linear model on the features), LEEP and
NCE (how the source classifier's predictions relate to the target labels).
Higher is better for all three.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils.validation import check_array, check_consistent_length

__all__ = ["leep_score", "logme_score", "nce_score"]

# LogME's fixed point usually settles in under ten steps; the cap only guards
# degenerate inputs.
_LOGME_MAX_ITER = 100
_LOGME_TOL = 1e-6
_LOGME_EPS = 1e-5


def _check_features_labels(features, y, name):
    features = check_array(features, dtype=np.float64, input_name=name)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per row), got shape {y.shape}")
    check_consistent_length(features, y)
    classes, y_index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y has a single class ({classes[0]!r}): a transferability score needs at least 2")
    return features, y_index, len(classes)


def _logme_evidence(alpha, beta, s2, z, y_sq, n, dim):
    """Log evidence per sample of ``y ~ N(F m, 1/beta)`` with ``m ~ N(0, 1/alpha)``.

    Written in the SVD of the features ``F = U S V'`` (``s2`` the squared
    singular values, ``z = U'y``, ``y_sq = |y|^2``), so it costs O(rank).
    Returns the evidence and the fixed-point update of (alpha, beta).
    """
    shrink = alpha + beta * s2
    gamma = np.sum(beta * s2 / shrink)
    m_sq = np.sum(beta**2 * s2 * z**2 / shrink**2)  # |m|^2
    # |F m - y|^2: the part of y in the span of F shrunk, the rest untouched.
    residual = np.sum((alpha * z / shrink) ** 2) + max(y_sq - np.sum(z**2), 0.0)
    logdet = np.sum(np.log(shrink)) + (dim - len(s2)) * np.log(alpha)
    evidence = (
        n * np.log(beta) + dim * np.log(alpha) - n * np.log(2 * np.pi) - beta * residual - alpha * m_sq - logdet
    ) / (2 * n)
    # The small constants of the reference implementation keep the updates
    # finite when the features fit the labels exactly (fewer samples than
    # features): without them beta runs off to infinity.
    new_alpha = gamma / (m_sq + _LOGME_EPS)
    new_beta = (n - gamma) / (residual + _LOGME_EPS)
    return evidence, new_alpha, new_beta


def logme_score(features: ArrayLike, y: ArrayLike) -> float:
    """LogME: mean log evidence of a Bayesian linear model per class.

    For each class, its one-hot indicator is regressed on the features
    with a Gaussian prior on the weights (precision ``alpha``) and Gaussian
    noise (precision ``beta``); both are set by maximising the evidence
    (the marginal likelihood) with MacKay's fixed-point updates, after a
    single SVD of the features shared by all classes (You et al., "LogME:
    Practical Assessment of Pre-trained Models for Transfer Learning",
    ICML 2021). Higher is better; values are per sample, comparable between
    feature sets of different widths on the same labels.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        Class labels, at least two classes.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import logme_score
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> separated = rng.normal(size=(100, 8)) + 3 * y[:, None]
    >>> noise = rng.normal(size=(100, 8))
    >>> bool(logme_score(separated, y) > logme_score(noise, y))
    True
    """
    features, y_index, n_classes = _check_features_labels(features, y, "features")
    n, dim = features.shape
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    s2 = s**2
    scores = []
    for k in range(n_classes):
        target = (y_index == k).astype(np.float64)
        z, y_sq = u.T @ target, target @ target
        alpha, beta = 1.0, 1.0
        for _ in range(_LOGME_MAX_ITER):
            evidence, new_alpha, new_beta = _logme_evidence(alpha, beta, s2, z, y_sq, n, dim)
            done = abs(new_alpha / new_beta - alpha / beta) <= _LOGME_TOL * (alpha / beta)
            alpha, beta = new_alpha, new_beta
            if done:
                break
        scores.append(_logme_evidence(alpha, beta, s2, z, y_sq, n, dim)[0])
    return float(np.mean(scores))


def _check_source_probabilities(source_proba, y):
    source_proba = check_array(source_proba, dtype=np.float64, input_name="source_proba")
    if np.any(source_proba < 0) or not np.allclose(source_proba.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("source_proba must hold probabilities: non-negative rows that sum to 1")
    _, y_index, n_classes = _check_features_labels(source_proba, y, "source_proba")
    return source_proba, y_index, n_classes


def leep_score(source_proba: ArrayLike, y: ArrayLike) -> float:
    """LEEP: log expected empirical prediction of the source classifier.

    The source classifier's soft predictions ``theta(z | x)`` and the target
    labels give an empirical joint ``P(y, z)``; each target sample is then
    predicted by ``sum_z P(y | z) theta(z | x)``, and LEEP is the mean log
    probability of the true label (Nguyen et al., "LEEP: A New Measure to
    Evaluate Transferability of Learned Representations", ICML 2020).
    Higher (closer to 0) is better.

    Parameters
    ----------
    source_proba : array-like of shape (n_samples, n_source_classes)
        Source-class probabilities of each target sample (e.g. ImageNet).
    y : array-like of shape (n_samples,)

    Returns
    -------
    float

    Examples
    --------
    >>> from sktransfer.selection import leep_score
    >>> round(leep_score([[0.9, 0.1], [0.2, 0.8]], [0, 1]), 4)
    -0.2911
    """
    source_proba, y_index, n_classes = _check_source_probabilities(source_proba, y)
    n = len(y_index)
    joint = np.zeros((n_classes, source_proba.shape[1]))
    np.add.at(joint, y_index, source_proba / n)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)  # P(y | z)
    predicted = np.einsum("nz,nz->n", source_proba, conditional[y_index])
    return float(np.mean(np.log(np.maximum(predicted, 1e-300))))


def nce_score(source_proba: ArrayLike, y: ArrayLike) -> float:
    """NCE: negative conditional entropy of target labels given source labels.

    Each sample's source label is the source classifier's top class; NCE is
    ``-H(Y | Z)`` of the empirical joint of target and source labels (Tran
    et al., "Transferability and Hardness of Supervised Classification
    Tasks", ICCV 2019). 0 means the source label determines the target
    label; higher is better.

    Parameters
    ----------
    source_proba : array-like of shape (n_samples, n_source_classes)
        Source-class probabilities (or scores: only the arg-max is used).
    y : array-like of shape (n_samples,)

    Returns
    -------
    float

    Examples
    --------
    >>> from sktransfer.selection import nce_score
    >>> round(nce_score([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]], [0, 1, 1]), 4)
    -0.4621
    """
    source_proba = check_array(source_proba, dtype=np.float64, input_name="source_proba")
    _, y_index, n_classes = _check_features_labels(source_proba, y, "source_proba")
    z = source_proba.argmax(axis=1)
    joint = np.zeros((n_classes, source_proba.shape[1]))
    np.add.at(joint, (y_index, z), 1.0 / len(z))
    p_z = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log((joint / np.maximum(p_z, 1e-300))[nonzero])))

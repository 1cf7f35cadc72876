"""Private helpers shared by the domain-shift modules.

Kept here so that the covariate-shift weighter, CORAL and the shift tests
validate their two feature matrices the same way and give the same error
when the domains do not live in the same feature space.
"""

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted


def check_domain_features(X, name, *, ensure_min_samples=1):
    """Validate one domain's feature matrix, naming it in errors."""
    try:
        return check_array(
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=ensure_min_samples,
            input_name=name,
        )
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def check_same_feature_space(X_source, X_target, source_name, target_name):
    """Raise a clear error when two domains have different numbers of features."""
    if X_source.shape[1] != X_target.shape[1]:
        raise ValueError(
            f"{source_name} has {X_source.shape[1]} features but {target_name} has "
            f"{X_target.shape[1]}: both domains must live in the same feature "
            "space. Embed source and target images with the same backbone (and "
            "the same pooling/layer) before comparing or aligning them."
        )


def default_domain_classifier():
    """A probabilistic source-vs-target classifier that works on raw embeddings.

    Standardising first matters for embeddings whose coordinates have very
    different scales; logistic regression is well specified for the log density
    ratio of two Gaussians with a shared covariance, which is the case the
    weights are tested on.
    """
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def base_classifier(estimator):
    """The wrapped classifier of a meta-estimator: ``estimator``, or logistic regression."""
    return LogisticRegression(max_iter=1000) if estimator is None else estimator


def wrapped_estimator_has(method):
    """For ``available_if``: does the (fitted, else configured) wrapped estimator have ``method``?"""

    def check(self):
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, method)
        return hasattr(base_classifier(self.estimator), method)

    return check


def is_fitted(obj):
    """True when ``obj`` is a fitted estimator (or a frozen one)."""
    try:
        check_is_fitted(obj)
    except (NotFittedError, TypeError):
        return False
    return True


def domain_labels(n_source, n_target):
    """0 for the source rows, 1 for the target rows (stacked in that order)."""
    return np.r_[np.zeros(n_source, dtype=int), np.ones(n_target, dtype=int)]

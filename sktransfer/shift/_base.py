"""Private helpers shared by the domain-shift modules.

Two things live here. The checks of a pair of domain feature matrices, so
that the covariate-shift weighter, CORAL and the shift tests give the same
error when the domains do not live in the same feature space. And
:class:`WrappedClassifier`, the base of the three meta-classifiers
(resampling, importance weighting, label shift), which validates prediction
input and delegates ``predict``/``predict_proba``/``decision_function`` to the
fitted inner estimator, so that each subclass writes only what is special to
it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


def check_domain_features(X: ArrayLike, name: str, *, ensure_min_samples: int = 1) -> NDArray[np.floating]:
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


def check_same_feature_space(X_source: NDArray, X_target: NDArray, source_name: str, target_name: str) -> None:
    """Raise a clear error when two domains have different numbers of features."""
    if X_source.shape[1] != X_target.shape[1]:
        raise ValueError(
            f"{source_name} has {X_source.shape[1]} features but {target_name} has "
            f"{X_target.shape[1]}: both domains must live in the same feature "
            "space. Embed source and target images with the same backbone (and "
            "the same pooling/layer) before comparing or aligning them."
        )


def default_domain_classifier() -> Pipeline:
    """A probabilistic source-vs-target classifier that works on raw embeddings.

    Standardising first matters for embeddings whose coordinates have very
    different scales; logistic regression is well specified for the log density
    ratio of two Gaussians with a shared covariance, which is the case the
    weights are tested on.
    """
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def is_fitted(obj: object) -> bool:
    """True when ``obj`` is a fitted estimator (or a frozen one)."""
    try:
        check_is_fitted(obj)
    except (NotFittedError, TypeError):
        return False
    return True


def domain_labels(n_source: int, n_target: int) -> NDArray[np.int_]:
    """0 for the source rows, 1 for the target rows (stacked in that order)."""
    return np.r_[np.zeros(n_source, dtype=int), np.ones(n_target, dtype=int)]


def _delegates(method):
    """For ``available_if``: is ``method`` delegated, and does the inner estimator have it?

    The fitted inner estimator is asked when there is one, else the configured
    one, so that ``hasattr(meta, "predict_proba")`` is right before and after fit.
    """

    def check(self):
        if method not in self._delegated_methods:
            return False
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, method)
        return hasattr(self._inner_estimator(), method)

    return check


class WrappedClassifier(ClassifierMixin, BaseEstimator):
    """Base of a classifier that fits and delegates to an inner ``estimator``.

    Subclasses set ``estimator_`` (and ``classes_``) in ``fit``, starting with
    :meth:`_validate_training_data`. Prediction validates ``X`` against the
    fitted feature count and calls the inner estimator; a subclass that
    changes the probabilities overrides :meth:`_adjust_proba`, and one whose
    decisions are not the inner estimator's removes ``"decision_function"``
    from ``_delegated_methods`` (the inner scores would contradict its
    ``predict``) and overrides ``predict``.
    """

    _delegated_methods: tuple[str, ...] = ("predict_proba", "decision_function")

    def _inner_estimator(self):
        """The configured inner estimator: ``estimator``, or logistic regression."""
        return LogisticRegression(max_iter=1000) if self.estimator is None else self.estimator

    def _validate_training_data(self, X, y):
        """Validate ``(X, y)`` of ``fit`` (records ``n_features_in_``) as classification data."""
        X, y = validate_data(self, X, y)
        try:
            check_classification_targets(y)
            classes = np.unique(y)
        except TypeError as exc:
            # Raised deep inside np.unique, with a message that names no input.
            raise TypeError(
                f"y mixes labels that cannot be compared ({exc}), e.g. None among "
                "strings; give every sample a label of the same type."
            ) from exc
        if len(classes) < 2:
            raise ValueError(
                f"y has one class ({classes[0]!r}); {type(self).__name__} needs samples of at least 2 classes."
            )
        return X, y

    def _validate_prediction_input(self, X):
        # Checked before ``self.estimator_`` is touched, so that an unfitted
        # model raises NotFittedError rather than AttributeError.
        check_is_fitted(self)
        return validate_data(self, X, reset=False)

    def _adjust_proba(self, proba):
        """Hook: turn the inner estimator's probabilities into this model's."""
        return proba

    def predict(self, X: ArrayLike) -> NDArray:
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted class labels.
        """
        X = self._validate_prediction_input(X)
        return self.estimator_.predict(X)

    @available_if(_delegates("predict_proba"))
    def predict_proba(self, X: ArrayLike) -> NDArray[np.floating]:
        """Class probabilities, ordered like ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities.
        """
        X = self._validate_prediction_input(X)
        return self._adjust_proba(self.estimator_.predict_proba(X))

    @available_if(_delegates("decision_function"))
    def decision_function(self, X: ArrayLike) -> NDArray[np.floating]:
        """Decision function of the fitted inner estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Decision values.
        """
        X = self._validate_prediction_input(X)
        return self.estimator_.decision_function(X)

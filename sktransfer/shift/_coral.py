"""CORAL: correlation alignment of source features to target statistics.

Sun, Feng and Saenko (2016) whiten the source features with the source
covariance and re-colour them with the target covariance,

    X_s* = (X_s - μ_s) C_s^{-1/2} C_t^{1/2} + μ_t,

with C = Cov + λ I, then train on X_s* and predict on the raw target
features. In a Pipeline this means two different things happen to data: the
training (source) rows are aligned, the rows seen afterwards (target rows at
prediction time) are left as they are. ``CORAL`` therefore does the alignment
in ``fit_transform`` and leaves ``transform`` as the identity, the same
fit_transform/transform split as scikit-learn's ``TargetEncoder``.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import check_domain_features, check_same_feature_space


def _symmetric_power(matrix, power):
    """``matrix ** power`` for a symmetric positive-definite matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    eigenvalues = np.clip(eigenvalues, np.finfo(float).tiny, None)
    return (eigenvectors * eigenvalues**power) @ eigenvectors.T


def _regularised_covariance(X, regularization):
    covariance = np.atleast_2d(np.cov(X, rowvar=False)) if len(X) > 1 else np.zeros((X.shape[1],) * 2)
    # Ridge relative to the average variance so that `regularization` means the
    # same on standardised features (where it is the paper's λ) and on raw
    # embeddings of any scale.
    scale = np.trace(covariance) / len(covariance)
    ridge = regularization * (scale if scale > 0 else 1.0)
    return covariance + ridge * np.eye(len(covariance))


class CORAL(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Correlation alignment (CORAL) of source features to a target domain.

    Fit with ``fit(X_source, X_target=X_target)`` (in a Pipeline:
    ``pipe.fit(X_source, y_source, coral__X_target=X_target)``).
    ``fit_transform`` and :meth:`align` return the source features re-coloured
    to the target mean and covariance; :meth:`transform` returns its input
    unchanged, because data arriving after fitting is target data, already in
    target statistics. So a ``make_pipeline(CORAL(), classifier)`` trains on
    aligned source features and predicts on raw target features, as in the
    original method.

    Parameters
    ----------
    regularization : float, default=1.0
        Ridge λ added to both covariances, in units of the average feature
        variance (λ = 1 on standardised features is the paper's choice). It
        keeps the whitening stable when features outnumber samples, as with
        1280-d embeddings of a few hundred images.
    match_mean : bool, default=True
        Also move the source mean onto the target mean (the paper centres
        features beforehand instead).

    Attributes
    ----------
    alignment_ : ndarray of shape (n_features, n_features)
        ``C_s^{-1/2} C_t^{1/2}``.
    source_mean_, target_mean_ : ndarray of shape (n_features,)
        Domain means.
    n_features_in_ : int
        Number of features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when X had string column names.

    Notes
    -----
    Fitting without ``X_target`` treats the source as its own target, which
    makes the alignment the identity.

    When cross-validating a Pipeline without metadata routing, scikit-learn
    slices every fit parameter that has as many rows as ``X``; give
    ``X_target`` a different number of rows (or enable routing) so that it is
    passed whole.

    References
    ----------
    B. Sun, J. Feng, K. Saenko (2016). Return of frustratingly easy domain
    adaptation. AAAI.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import CORAL
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(size=(400, 3))
    >>> X_target = rng.normal(size=(300, 3)) * [1.0, 3.0, 0.5] + 2.0
    >>> aligned = CORAL(regularization=1e-3).fit_transform(X_source, X_target=X_target)
    >>> np.round(aligned.std(axis=0) / X_target.std(axis=0), 1)
    array([1., 1., 1.])
    """

    _parameter_constraints = {
        "regularization": [Interval(Real, 0, None, closed="left")],
        "match_mean": ["boolean"],
    }

    def __init__(self, *, regularization: float = 1.0, match_mean: bool = True) -> None:
        self.regularization = regularization
        self.match_mean = match_mean

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike | None = None, *, X_target: ArrayLike | None = None) -> CORAL:
        """Learn the source-to-target alignment.

        Parameters
        ----------
        X : array-like of shape (n_source, n_features)
            Source-domain features.
        y : None
            Ignored; accepted for Pipeline compatibility.
        X_target : array-like of shape (n_target, n_features), default=None
            Target-domain features from the same backbone. ``None`` uses
            ``X`` itself (identity alignment).

        Returns
        -------
        self : CORAL
            Fitted transformer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        if X_target is None:
            X_target = X
        else:
            X_target = check_domain_features(X_target, "X_target")
            check_same_feature_space(X, X_target, "X (source)", "X_target")
        source_covariance = _regularised_covariance(X.astype(np.float64), self.regularization)
        target_covariance = _regularised_covariance(X_target.astype(np.float64), self.regularization)
        self.alignment_ = _symmetric_power(source_covariance, -0.5) @ _symmetric_power(target_covariance, 0.5)
        self.source_mean_ = X.mean(axis=0, dtype=np.float64)
        self.target_mean_ = X_target.mean(axis=0, dtype=np.float64)
        return self

    def align(self, X: ArrayLike) -> NDArray[np.floating]:
        """Map source-domain rows to the target statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source-domain features.

        Returns
        -------
        X_aligned : ndarray of shape (n_samples, n_features)
            ``(X - source_mean_) @ alignment_ + offset``, where the offset is
            ``target_mean_`` with ``match_mean=True`` and ``source_mean_``
            otherwise.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        offset = self.target_mean_ if self.match_mean else self.source_mean_
        aligned = (X - self.source_mean_) @ self.alignment_ + offset
        return aligned.astype(X.dtype, copy=False)

    def fit_transform(
        self, X: ArrayLike, y: ArrayLike | None = None, *, X_target: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        """Fit, then return ``X`` aligned to the target statistics.

        Parameters
        ----------
        X : array-like of shape (n_source, n_features)
            Source-domain features.
        y : None
            Ignored.
        X_target : array-like of shape (n_target, n_features), default=None
            Target-domain features.

        Returns
        -------
        X_aligned : ndarray of shape (n_source, n_features)
            Source features with the target's mean and covariance.
        """
        return self.fit(X, y, X_target=X_target).align(X)

    def transform(self, X: ArrayLike) -> NDArray[np.floating]:
        """Return target-domain rows unchanged (validated).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target-domain features.

        Returns
        -------
        X_out : ndarray of shape (n_samples, n_features)
            ``X`` as a float array; use :meth:`align` to map source rows.
        """
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32], copy=True)

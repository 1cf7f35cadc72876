"""Covariate shift: importance weights from a domain classifier.

Under covariate shift P(X) changes between source and target while P(Y|X)
stays put, so a model fitted on source rows weighted by the density ratio
w(x) = p_target(x) / p_source(x) minimises the target risk (Shimodaira, 2000).
The ratio is estimated with a probabilistic classifier that tells source rows
from target rows (Bickel et al., 2007): with n_s source and n_t target rows,

    w(x) = (n_s / n_t) * P(target | x) / P(source | x).

The factor n_s / n_t removes the class prior the domain classifier learned
from the two sample sizes. Getting the ratio upside down (P(source|x) over
P(target|x)) up-weights exactly the rows that are *least* like the target; the
tests check direction and size against two Gaussians whose ratio is known.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import get_config
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.metrics import get_scorer, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from .._typing import Estimator, RandomStateLike
from ._base import (
    WrappedClassifier,
    check_domain_features,
    check_same_feature_space,
    default_domain_classifier,
    domain_labels,
    is_fitted,
)

# Keeps P(target|x) / P(source|x) finite when the domain classifier is certain.
_PROBA_EPS = 1e-12


class SupportsComputeWeights(Protocol):
    """What ``weighter=`` must offer: ``compute_weights(X)``, one weight per row."""

    def compute_weights(self, X: ArrayLike) -> ArrayLike: ...


class DomainClassifierWeighter(BaseEstimator):
    """Importance weights p_target(x) / p_source(x) from a domain classifier.

    Fit with ``fit(X_source, X_target)``; then :meth:`compute_weights` gives
    the weight of any source row, to pass as ``sample_weight`` to a
    classifier trained on the source (see :class:`ImportanceWeightedClassifier`)
    or to an importance-weighted scorer
    (:func:`make_importance_weighted_scorer`).

    Parameters
    ----------
    estimator : classifier with ``predict_proba``, default=None
        Domain classifier (source = 0, target = 1). ``None`` means
        ``StandardScaler`` followed by ``LogisticRegression``, which is exact
        for the log ratio of two Gaussians with a shared covariance. A
        poorly calibrated domain classifier gives badly sized weights.
    cv : int, default=5
        Folds of the out-of-fold predictions behind ``domain_auc_``.
    normalize : bool, default=True
        Divide the weights by their mean over the fitted source rows, so that
        they average 1 on the source (as the true ratio does in expectation)
        and the effective training-set size keeps its meaning.
    clip : float or None, default=None
        Upper bound on a weight, applied after normalisation (truncated
        importance weighting: trades a little bias for much less variance when
        a few source rows look very target-like).
    random_state : int, RandomState instance or None, default=None
        Seed of the fold shuffling for ``domain_auc_``.

    Attributes
    ----------
    estimator_ : classifier
        Domain classifier fitted on all source and target rows.
    domain_auc_ : float
        Out-of-fold ROC AUC of the domain classifier: 0.5 means the domains
        look the same to it, 1.0 means they are perfectly separable.
    n_source_, n_target_ : int
        Number of rows of each domain seen in :meth:`fit`.
    source_mean_weight_ : float
        Mean unnormalised weight over the source rows (the normaliser).
    n_features_in_ : int
        Number of features.

    References
    ----------
    H. Shimodaira (2000). Improving predictive inference under covariate shift
    by weighting the log-likelihood function. J. Stat. Plan. Inference 90(2).

    S. Bickel, M. Brückner, T. Scheffer (2007). Discriminative learning for
    differing training and test distributions. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import DomainClassifierWeighter
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(0.0, 1.0, size=(500, 2))
    >>> X_target = rng.normal(1.0, 1.0, size=(500, 2))
    >>> weighter = DomainClassifierWeighter(random_state=0).fit(X_source, X_target)
    >>> w = weighter.compute_weights(np.array([[-1.0, -1.0], [1.0, 1.0]]))
    >>> bool(w[1] > w[0])  # target-like rows weigh more
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "normalize": ["boolean"],
        "clip": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        estimator: Estimator | None = None,
        cv: int = 5,
        normalize: bool = True,
        clip: float | None = None,
        random_state: RandomStateLike = None,
    ) -> None:
        self.estimator = estimator
        self.cv = cv
        self.normalize = normalize
        self.clip = clip
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X_source: ArrayLike, X_target: ArrayLike) -> DomainClassifierWeighter:
        """Fit the domain classifier on source (0) versus target (1) rows.

        Parameters
        ----------
        X_source : array-like of shape (n_source, n_features)
            Source-domain features (the labelled training data).
        X_target : array-like of shape (n_target, n_features)
            Target-domain features (unlabelled data from deployment).

        Returns
        -------
        self : DomainClassifierWeighter
            Fitted weighter.
        """
        X_source = check_domain_features(X_source, "X_source", ensure_min_samples=self.cv)
        X_target = check_domain_features(X_target, "X_target", ensure_min_samples=self.cv)
        check_same_feature_space(X_source, X_target, "X_source", "X_target")
        validate_data(self, X_source)  # records n_features_in_
        X = np.vstack([X_source, X_target])
        domain = domain_labels(len(X_source), len(X_target))
        classifier = default_domain_classifier() if self.estimator is None else self.estimator
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        out_of_fold = cross_val_predict(clone(classifier), X, domain, cv=folds, method="predict_proba")[:, 1]
        self.domain_auc_ = float(roc_auc_score(domain, out_of_fold))
        self.estimator_ = clone(classifier).fit(X, domain)
        self.n_source_, self.n_target_ = len(X_source), len(X_target)
        self.source_mean_weight_ = float(np.mean(self._density_ratio(X_source)))
        return self

    def _density_ratio(self, X):
        target_column = list(self.estimator_.classes_).index(1)
        p_target = np.clip(self.estimator_.predict_proba(X)[:, target_column], _PROBA_EPS, 1 - _PROBA_EPS)
        # Odds of "target" rescaled by n_s / n_t = p_target(x) / p_source(x).
        return (self.n_source_ / self.n_target_) * p_target / (1.0 - p_target)

    def compute_weights(self, X: ArrayLike) -> NDArray[np.floating]:
        """Importance weight of each row of ``X`` (source-domain rows).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to weight, normally the source training rows.

        Returns
        -------
        weights : ndarray of shape (n_samples,)
            Estimated p_target(x) / p_source(x), normalised and clipped as
            configured. Large where a row looks like the target domain.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        weights = self._density_ratio(X)
        if self.normalize:
            weights = weights / self.source_mean_weight_
        if self.clip is not None:
            weights = np.minimum(weights, self.clip)
        return weights


def _sample_weight_param(estimator):
    """Name of the fit parameter that carries per-row weights to ``estimator``.

    A Pipeline has no ``sample_weight`` of its own: without metadata routing
    the weights go to its final step as ``<step>__sample_weight``.
    """
    if isinstance(estimator, Pipeline) and not get_config()["enable_metadata_routing"]:
        step_name, final_step = estimator.steps[-1]
        if has_fit_parameter(final_step, "sample_weight"):
            return f"{step_name}__sample_weight"
        owner = f"The final step {step_name!r} ({type(final_step).__name__})"
    elif isinstance(estimator, Pipeline) or has_fit_parameter(estimator, "sample_weight"):
        # With routing enabled a Pipeline takes sample_weight and routes it
        # to the steps that requested it (set_fit_request).
        return "sample_weight"
    else:
        owner = f"{type(estimator).__name__}.fit"
    raise ValueError(
        f"{owner} does not accept sample_weight, so it cannot be importance weighted; choose an estimator that does."
    )


class ImportanceWeightedClassifier(WrappedClassifier):
    """Classifier fitted with importance weights against covariate shift.

    The weights ``weighter.compute_weights(X) ** flattening`` (times any
    ``sample_weight``) are passed to ``estimator.fit(X, y, sample_weight=...)``.

    Parameters
    ----------
    estimator : classifier accepting ``sample_weight``, default=None
        ``None`` means ``LogisticRegression(max_iter=1000)``. For a Pipeline
        the weights go to its final step.
    weighter : object with ``compute_weights(X)``, default=None
        Usually a :class:`DomainClassifierWeighter`. Either pass ``X_target``
        to :meth:`fit`, which fits a clone of it on ``(X, X_target)``, or give
        one already fitted. Cloning (``GridSearchCV``, ``cross_val_score``)
        forgets the fit, so wrap a fitted weighter in
        :class:`sklearn.frozen.FrozenEstimator` to keep it. ``None`` means
        ``DomainClassifierWeighter()``. With neither a fitted weighter nor
        ``X_target`` there is no target to weight towards: the fit is
        unweighted and a warning says so.
    flattening : float in [0, 1], default=1.0
        Exponent λ on the weights (Shimodaira, 2000): 0 ignores the shift, 1
        is full importance weighting; in between trades bias for variance.
        Tune it with importance-weighted cross-validation
        (:func:`make_importance_weighted_scorer`, Sugiyama et al. 2007).

    Attributes
    ----------
    estimator_ : classifier
        The fitted weighted classifier.
    weighter_ : object or None
        The weighter whose weights were used (None when no target was given).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import DomainClassifierWeighter, ImportanceWeightedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(0.0, 1.0, size=(300, 2))
    >>> y_source = (X_source[:, 0] > 0).astype(int)
    >>> X_target = rng.normal(1.0, 1.0, size=(300, 2))
    >>> clf = ImportanceWeightedClassifier(weighter=DomainClassifierWeighter(random_state=0))
    >>> clf.fit(X_source, y_source, X_target=X_target).predict(X_target[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "weighter": [HasMethods(["compute_weights"]), None],
        "flattening": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        estimator: Estimator | None = None,
        weighter: SupportsComputeWeights | None = None,
        *,
        flattening: float = 1.0,
    ) -> None:
        self.estimator = estimator
        self.weighter = weighter
        self.flattening = flattening

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        X_target: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> ImportanceWeightedClassifier:
        """Fit ``estimator`` on ``(X, y)`` weighted towards the target domain.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source features.
        y : array-like of shape (n_samples,)
            Source labels.
        X_target : array-like of shape (n_target, n_features), default=None
            Unlabelled target features. When given, a clone of ``weighter`` is
            fitted on ``(X, X_target)``; otherwise ``weighter`` must already
            be fitted.
        sample_weight : array-like of shape (n_samples,), default=None
            Extra per-row weights, multiplied with the importance weights.

        Returns
        -------
        self : ImportanceWeightedClassifier
            Fitted classifier.
        """
        X, y = self._validate_training_data(X, y)
        estimator = self._inner_estimator()
        weight_param = _sample_weight_param(estimator)
        weighter = DomainClassifierWeighter() if self.weighter is None else self.weighter
        if X_target is not None:
            self.weighter_ = clone(weighter).fit(X, X_target)
        elif is_fitted(weighter):
            self.weighter_ = weighter
        else:
            warnings.warn(
                "ImportanceWeightedClassifier got no target data: the weighter is "
                "not fitted and no X_target was given, so the target is taken to "
                "be the source and all importance weights are 1. Pass "
                "fit(X, y, X_target=...), or a fitted weighter wrapped in "
                "sklearn.frozen.FrozenEstimator (which survives cloning in "
                "GridSearchCV and cross_val_score).",
                UserWarning,
                stacklevel=2,
            )
            self.weighter_ = None
        if self.weighter_ is None:
            weights = np.ones(len(X))
        else:
            weights = np.asarray(self.weighter_.compute_weights(X), dtype=float) ** self.flattening
        weights = weights * _check_sample_weight(sample_weight, X)
        self.estimator_ = clone(estimator).fit(X, y, **{weight_param: weights})
        self.classes_ = self.estimator_.classes_
        return self


class _ImportanceWeightedScorer:
    """Scorer whose per-row scores are weighted by importance weights."""

    def __init__(self, scoring, weighter):
        self.scoring = scoring
        self.weighter = weighter

    def __call__(self, estimator, X, y_true, importance_weight=None):
        if importance_weight is None:
            if self.weighter is None:
                raise ValueError(
                    "The importance-weighted scorer got no importance_weight. With "
                    "GridSearchCV/cross_validate, enable metadata routing "
                    "(with sklearn.config_context(enable_metadata_routing=True): ...) "
                    "and pass importance_weight=weights to fit; or build the scorer "
                    "with a fitted weighter: make_importance_weighted_scorer(..., "
                    "weighter=fitted_weighter)."
                )
            importance_weight = self.weighter.compute_weights(X)
        importance_weight = np.asarray(importance_weight, dtype=float)
        if importance_weight.shape != (len(y_true),):
            raise ValueError(
                f"importance_weight has shape {importance_weight.shape}; expected one "
                f"weight per validation row, shape ({len(y_true)},)."
            )
        base_scorer = get_scorer(self.scoring)
        return base_scorer(estimator, X, y_true, sample_weight=importance_weight)

    def get_metadata_routing(self):
        # Asks routers (GridSearchCV, cross_validate) to slice and pass the
        # `importance_weight` given to their fit down to this scorer.
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="importance_weight", alias=True)
        return request

    def __repr__(self):
        return f"make_importance_weighted_scorer({self.scoring!r}, weighter={self.weighter!r})"


def make_importance_weighted_scorer(
    scoring: str | Callable[..., float] = "accuracy", *, weighter: SupportsComputeWeights | None = None
) -> Callable[..., float]:
    """Scorer for importance-weighted cross-validation (Sugiyama et al., 2007).

    Validation folds drawn from the source are weighted by
    p_target(x) / p_source(x), so that the cross-validated score estimates
    the *target* score under covariate shift, and model selection (e.g. the
    ``flattening`` of :class:`ImportanceWeightedClassifier`, or a
    regularisation strength) picks what works on the target.

    The weights reach the scorer in one of two ways:

    * metadata routing: inside ``sklearn.config_context(enable_metadata_routing=True)``
      pass ``importance_weight=weights`` (one per source row) to
      ``GridSearchCV.fit`` or ``cross_validate(params=...)``; each validation
      fold receives its slice. The scorer requests ``importance_weight``
      itself, and global configuration is never changed;
    * a fitted ``weighter``: weights are computed from the validation rows.

    Parameters
    ----------
    scoring : str or callable, default="accuracy"
        Any scikit-learn scorer name or scorer callable accepting
        ``sample_weight``.
    weighter : fitted object with ``compute_weights(X)``, default=None
        Used when no ``importance_weight`` is passed.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, importance_weight=None) -> float``.

    References
    ----------
    M. Sugiyama, M. Krauledat, K.-R. Müller (2007). Covariate shift adaptation
    by importance weighted cross validation. JMLR 8.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer import make_importance_weighted_scorer
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> scorer = make_importance_weighted_scorer("accuracy")
    >>> clf = LogisticRegression().fit(X, y)
    >>> scorer(clf, X, y, importance_weight=np.array([1.0, 1.0, 1.0, 1.0]))
    1.0
    """
    if not (isinstance(scoring, str) or callable(scoring)):
        raise TypeError(f"scoring must be a scorer name or callable, got {scoring!r}.")
    if weighter is not None and not hasattr(weighter, "compute_weights"):
        raise TypeError("weighter must have a compute_weights(X) method.")
    return _ImportanceWeightedScorer(scoring, weighter)

"""Label imbalance by resampling, as a classifier that fits in a plain Pipeline.

A scikit-learn :class:`~sklearn.pipeline.Pipeline` cannot host a sampler (it
would have to change ``y``), so the resampling happens inside ``fit`` of a
meta-classifier instead. Resampling shifts the class priors the inner model
sees; ``prior_correction`` undoes that shift in ``predict_proba`` so that the
probabilities describe the original training distribution again (Saerens et
al., 2002; Dal Pozzolo et al., 2015).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from numbers import Real
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from .._typing import Estimator, RandomStateLike
from ._base import WrappedClassifier

_UNDER_STRATEGIES = {"auto", "majority", "not minority", "not majority", "all"}
_OVER_STRATEGIES = {"auto", "minority", "not minority", "not majority", "all"}

#: imbalanced-learn's ``sampling_strategy``: a named set of classes, a
#: minority/majority ratio, a class -> count dict or a callable making one.
SamplingStrategy = str | float | dict[Hashable, int] | Callable[[NDArray[Any]], dict[Hashable, int]]


class SupportsFitResample(Protocol):
    """An imbalanced-learn style sampler: ``fit_resample(X, y)`` returns ``(X, y)``."""

    def fit_resample(self, X: ArrayLike, y: ArrayLike) -> tuple[ArrayLike, ArrayLike]: ...


def _classes_to_resample(counts, strategy, kind):
    """Names of the classes a string ``sampling_strategy`` selects."""
    classes = list(counts)
    minority = min(classes, key=lambda c: counts[c])
    majority = max(classes, key=lambda c: counts[c])
    if strategy == "auto":
        strategy = "not minority" if kind == "under" else "not majority"
    allowed = _UNDER_STRATEGIES if kind == "under" else _OVER_STRATEGIES
    if strategy not in allowed:
        raise ValueError(
            f"sampling_strategy={strategy!r} makes no sense for {kind}-sampling; use one of {sorted(allowed)}."
        )
    if strategy == "majority":
        return [majority]
    if strategy == "minority":
        return [minority]
    if strategy == "not minority":
        return [c for c in classes if c != minority]
    if strategy == "not majority":
        return [c for c in classes if c != majority]
    return classes


def target_class_counts(
    y: NDArray[Any], sampling_strategy: SamplingStrategy, kind: Literal["under", "over"]
) -> dict[Hashable, int]:
    """Number of samples per class after resampling, imbalanced-learn style.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels.
    sampling_strategy : str, float, dict or callable
        Same meaning as in imbalanced-learn: a string names the classes to
        resample (to the minority count when under-sampling, the majority
        count when over-sampling); a float is the desired ratio
        ``n_minority / n_majority`` after resampling (binary only); a dict maps
        classes to their desired number of samples; a callable gets ``y`` and
        returns such a dict.
    kind : {"under", "over"}
        Direction of the resampling.

    Returns
    -------
    counts : dict
        Class label to number of samples after resampling.
    """
    labels, n_per_class = np.unique(y, return_counts=True)
    counts = dict(zip(labels.tolist(), n_per_class.tolist()))
    if callable(sampling_strategy):
        sampling_strategy = sampling_strategy(y)
    targets = dict(counts)
    if isinstance(sampling_strategy, str):
        size = min(counts.values()) if kind == "under" else max(counts.values())
        for label in _classes_to_resample(counts, sampling_strategy, kind):
            targets[label] = size
    elif isinstance(sampling_strategy, Real):
        if len(counts) != 2:
            raise ValueError(
                "A float sampling_strategy is only defined for binary targets "
                f"(got {len(counts)} classes); pass a dict of per-class counts."
            )
        n_min, n_max = min(counts.values()), max(counts.values())
        for label, count in counts.items():
            if kind == "under" and count != n_min:
                targets[label] = int(n_min / sampling_strategy)
            elif kind == "over" and count != n_max:
                targets[label] = int(n_max * sampling_strategy)
    elif isinstance(sampling_strategy, dict):
        unknown = set(sampling_strategy) - set(counts)
        if unknown:
            raise ValueError(
                f"sampling_strategy names classes {sorted(unknown)!r} that are not in y (classes: {sorted(counts)!r})."
            )
        targets.update({label: int(n) for label, n in sampling_strategy.items()})
    else:
        raise TypeError(
            f"sampling_strategy must be a str, float, dict or callable, got {type(sampling_strategy).__name__}."
        )
    for label, count in counts.items():
        if kind == "under" and targets[label] > count:
            raise ValueError(
                f"Under-sampling cannot raise class {label!r} from {count} to "
                f"{targets[label]} samples; lower sampling_strategy or use "
                "sampler='over'."
            )
        if kind == "over" and targets[label] < count:
            raise ValueError(
                f"Over-sampling cannot lower class {label!r} from {count} to "
                f"{targets[label]} samples; raise sampling_strategy or use "
                "sampler='under'."
            )
        if targets[label] < 1:
            raise ValueError(f"sampling_strategy leaves class {label!r} with no samples.")
    return targets


def resampled_indices(
    y: ArrayLike,
    *,
    kind: Literal["under", "over"] = "under",
    sampling_strategy: SamplingStrategy = "auto",
    random_state: RandomStateLike = None,
) -> NDArray[np.intp]:
    """Row indices of a random under- or over-sample of ``y``.

    Useful as a balanced training order for models that take an index
    iterator rather than ``(X, y)``. Under-sampling draws without
    replacement; over-sampling keeps every row and draws the extra rows with
    replacement.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.
    kind : {"under", "over"}, default="under"
        Direction of the resampling.
    sampling_strategy : str, float, dict or callable, default="auto"
        See :func:`target_class_counts`.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Returns
    -------
    indices : ndarray of shape (n_resampled,)
        Indices into ``y``, grouped by class.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.shift._resampling import resampled_indices
    >>> y = np.array([0] * 8 + [1] * 2)
    >>> np.bincount(y[resampled_indices(y, random_state=0)])
    array([2, 2])
    """
    y = np.asarray(y)
    rng = check_random_state(random_state)
    targets = target_class_counts(y, sampling_strategy, kind)
    parts = []
    for label, n_target in targets.items():
        rows = np.flatnonzero(y == label)
        if kind == "under":
            parts.append(rng.choice(rows, size=n_target, replace=False))
        else:
            extra = rng.choice(rows, size=n_target - rows.size, replace=True)
            parts.append(np.concatenate([rows, extra]))
    return np.concatenate(parts)


class ResampledClassifier(WrappedClassifier):
    """Fit a classifier on a class-rebalanced resample of the training data.

    Resampling happens only in :meth:`fit`; prediction uses the data as is.
    This is the Pipeline-friendly alternative to a sampler step (which a
    scikit-learn Pipeline cannot hold): put this as the final step instead.

    Parameters
    ----------
    estimator : estimator object, default=None
        Classifier fitted on the resampled data; ``None`` means
        ``LogisticRegression(max_iter=1000)``.
    sampler : {"under", "over"} or object with ``fit_resample``, default="under"
        ``"under"`` randomly drops rows of the selected classes, ``"over"``
        randomly duplicates rows of the selected classes. Any object with
        ``fit_resample(X, y) -> (X_resampled, y_resampled)``, such as an
        imbalanced-learn sampler, is cloned and used instead; its own
        ``sampling_strategy`` then applies.
    sampling_strategy : str, float, dict or callable, default="auto"
        Which classes to resample and to what size, with imbalanced-learn's
        meaning: ``"auto"`` is ``"not minority"`` for under-sampling and
        ``"not majority"`` for over-sampling; a float is the desired
        ``n_minority / n_majority`` after resampling (binary only); a dict
        gives the number of samples per class after resampling. Only used by
        the built-in samplers.
    prior_correction : bool, default=True
        Undo in :meth:`predict_proba` the class-prior shift the resampling
        created, so that probabilities refer to the original class
        frequencies: ``p(y|x) ∝ p_resampled(y|x) * π_original(y) / π_resampled(y)``
        (Saerens et al., 2002). :meth:`predict` (and ``decision_function``,
        when the inner estimator has one) always give the decisions of the
        model fitted on resampled data (the balanced decision rule that is
        the reason to resample), so with ``prior_correction=True`` they can
        differ from ``argmax(predict_proba)`` on purpose.
    random_state : int, RandomState instance or None, default=None
        Seed of the built-in samplers; also set on a custom sampler that has
        a ``random_state`` parameter.

    Attributes
    ----------
    estimator_ : estimator object
        The classifier fitted on the resampled data.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    class_counts_ : ndarray of shape (n_classes,)
        Samples per class before resampling, ordered like ``classes_``.
    resampled_class_counts_ : ndarray of shape (n_classes,)
        Samples per class after resampling, ordered like ``classes_``.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.

    References
    ----------
    M. Saerens, P. Latinne, C. Decaestecker (2002). Adjusting the outputs of a
    classifier to new a priori probabilities: a simple procedure. Neural
    Computation 14(1).

    A. Dal Pozzolo, O. Caelen, R. Johnson, G. Bontempi (2015). Calibrating
    probability with undersampling for unbalanced classification. IEEE SSCI.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from sktransfer import ResampledClassifier
    >>> X, y = make_classification(n_samples=550, weights=[10 / 11], random_state=0)
    >>> clf = ResampledClassifier(sampler="under", random_state=0).fit(X, y)
    >>> clf.resampled_class_counts_.tolist() == [clf.class_counts_.min()] * 2
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "sampler": [StrOptions({"under", "over"}), HasMethods(["fit_resample"])],
        "sampling_strategy": [
            StrOptions(_UNDER_STRATEGIES | _OVER_STRATEGIES),
            Interval(Real, 0, 1, closed="right"),
            dict,
            callable,
        ],
        "prior_correction": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator: Estimator | None = None,
        *,
        sampler: Literal["under", "over"] | SupportsFitResample = "under",
        sampling_strategy: SamplingStrategy = "auto",
        prior_correction: bool = True,
        random_state: RandomStateLike = None,
    ) -> None:
        self.estimator = estimator
        self.sampler = sampler
        self.sampling_strategy = sampling_strategy
        self.prior_correction = prior_correction
        self.random_state = random_state

    def _resample(self, X, y):
        if isinstance(self.sampler, str):
            rows = resampled_indices(
                y,
                kind=self.sampler,
                sampling_strategy=self.sampling_strategy,
                random_state=self.random_state,
            )
            return X[rows], y[rows]
        if not (isinstance(self.sampling_strategy, str) and self.sampling_strategy == "auto"):
            raise ValueError(
                "sampling_strategy only applies to the built-in samplers; set the "
                "sampling strategy on your sampler object instead and leave "
                "sampling_strategy='auto'."
            )
        sampler = clone(self.sampler) if hasattr(self.sampler, "get_params") else self.sampler
        if self.random_state is not None and "random_state" in getattr(sampler, "get_params", dict)():
            sampler.set_params(random_state=self.random_state)
        X_resampled, y_resampled = sampler.fit_resample(X, y)
        return np.asarray(X_resampled), np.asarray(y_resampled)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y: ArrayLike) -> ResampledClassifier:
        """Resample ``(X, y)`` and fit a clone of ``estimator`` on the result.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features, e.g. image embeddings.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : ResampledClassifier
            Fitted classifier.
        """
        X, y = self._validate_training_data(X, y)
        self.classes_, self.class_counts_ = np.unique(y, return_counts=True)
        X_resampled, y_resampled = self._resample(X, y)
        missing = np.setdiff1d(self.classes_, y_resampled)
        if missing.size:
            raise ValueError(f"The sampler removed every sample of classes {missing.tolist()!r}.")
        self.resampled_class_counts_ = np.array([np.sum(y_resampled == label) for label in self.classes_])
        self.estimator_ = clone(self._inner_estimator()).fit(X_resampled, y_resampled)
        return self

    def _adjust_proba(self, proba):
        if not self.prior_correction:
            return proba
        # The inner model saw priors n_resampled / N_resampled; Bayes' rule
        # swaps them for the original n / N (the constant totals cancel out in
        # the normalisation, so only the per-class ratio matters).
        prior_ratio = self.class_counts_ / self.resampled_class_counts_
        corrected = proba * prior_ratio
        return corrected / corrected.sum(axis=1, keepdims=True)

"""Transferability scores as scikit-learn scorers, for model selection searches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from sklearn.pipeline import Pipeline

from ._scores import leep_score, logme_score, nce_score

__all__ = ["make_transferability_scorer"]

_FEATURE_SCORES = {"logme": logme_score}
_SOURCE_SCORES = {"leep": leep_score, "nce": nce_score}


def _last_extractor(estimator):
    from ..feature_extraction import PretrainedFeatureExtractor

    steps = [s for _, s in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    steps = [s for s in steps if s not in (None, "passthrough")]
    if not steps or not isinstance(steps[-1], PretrainedFeatureExtractor):
        raise ValueError(
            "leep/nce scorers need a fitted PretrainedFeatureExtractor, or a Pipeline ending in one "
            "(a final 'passthrough' step is fine), whose features are the network's own embedding"
        )
    return steps[-1]


def _features(estimator, X):
    """The estimator's features of X: its transform, or its transform steps' for a pipeline ending in a model."""
    if isinstance(estimator, Pipeline) and not hasattr(estimator.steps[-1][1], "transform"):
        if estimator.steps[-1][1] not in (None, "passthrough"):
            return estimator[:-1].transform(X)
    if not hasattr(estimator, "transform"):
        raise TypeError(f"a transferability scorer needs a transformer, got {type(estimator).__name__}")
    return estimator.transform(X)


def make_transferability_scorer(score: Literal["logme", "leep", "nce"] = "logme") -> Callable[[Any, Any, Any], float]:
    """A scorer ``scorer(estimator, X, y)`` giving a transferability score of the features.

    Use it as ``scoring=`` of :class:`~sklearn.model_selection.GridSearchCV`
    over a pipeline whose last step is ``"passthrough"``: fitting such a
    pipeline only builds the extractor, and each candidate is scored from
    the features of the validation images, with no classifier trained.
    Such a pipeline is not a classifier, so give the search stratified
    folds (``cv=StratifiedKFold(k)``): an int would make unshuffled,
    possibly single-class folds.

    Parameters
    ----------
    score : {"logme", "leep", "nce"}, default="logme"
        ``"logme"`` scores the features the estimator outputs; ``"leep"``
        and ``"nce"`` need the estimator to be (or end in) a
        :class:`~sktransfer.PretrainedFeatureExtractor` with ``layer=None``
        and ``pooling=None``, whose network's ImageNet classifier gives the
        source probabilities.

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float``, higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV, StratifiedKFold
    >>> from sklearn.pipeline import Pipeline
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.selection import make_transferability_scorer
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    >>> y = np.repeat([0, 1], 12)
    >>> pipe = Pipeline([
    ...     ("embed", PretrainedFeatureExtractor(model="tiny_convnet", weights=None)),
    ...     ("clf", "passthrough"),
    ... ])
    >>> search = GridSearchCV(pipe, {"embed__layer": ["stage1", "stage2"]},
    ...                       scoring=make_transferability_scorer("logme"),
    ...                       cv=StratifiedKFold(2), refit=False)
    >>> bool(np.isfinite(search.fit(images, y).cv_results_["mean_test_score"]).all())
    True
    """
    if score in _FEATURE_SCORES:
        fn = _FEATURE_SCORES[score]

        def scorer(estimator, X, y):
            return fn(np.asarray(_features(estimator, X), dtype=np.float64), y)

    elif score in _SOURCE_SCORES:
        fn = _SOURCE_SCORES[score]

        def scorer(estimator, X, y):
            from ._shared_pass import reads_source_head, source_probabilities

            extractor = _last_extractor(estimator)
            if not reads_source_head(extractor):
                raise ValueError(
                    f"{score} needs layer=None and pooling=None, "
                    f"got layer={extractor.layer!r}, pooling={extractor.pooling!r}"
                )
            return fn(source_probabilities(extractor, _features(estimator, X)), y)

    else:
        raise ValueError(f"score must be one of {sorted(_FEATURE_SCORES) + sorted(_SOURCE_SCORES)}, got {score!r}")
    scorer.__name__ = f"{score}_scorer"
    return scorer

"""When to transfer: does a transferred model beat a target-only baseline?

Transfer can hurt ("negative transfer"): ImageNet features of 8x8 grey digits
are a worse representation than the 64 raw pixels. :func:`transfer_gain`
scores both models on the *same* cross-validation folds and tests the paired
fold differences with the corrected resampled t-test of Nadeau and Bengio
(2003); the plain paired t-test ignores that CV training sets overlap and
reports far too many significant differences.

The answer is three-way: transfer helps, transfer hurts, or "cannot tell".
The last covers a non-significant difference, fewer than
``MIN_FOLDS_TO_DECIDE`` folds, and fold differences that are all equal (which
says the scores are too coarse to measure the spread between folds, not that
the gain is certain).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import t as student_t
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv, cross_validate
from sklearn.utils._param_validation import HasMethods, Interval, validate_params
from sklearn.utils.validation import _num_samples

from .._typing import CVLike, Estimator

# Fewest folds on which the test decides. With 2 folds the variance of the
# differences rests on one degree of freedom: the reference t distribution is
# then a Cauchy (two-sided 5% critical value 12.7), and a small fold-to-fold
# spread, often an artefact of coarse scores on tiny folds, reads as a large
# effect. From 3 folds (2 degrees of freedom) the variance has some support.
MIN_FOLDS_TO_DECIDE = 3

HELPS, HURTS, CANNOT_TELL = "transfer helps", "transfer hurts", "cannot tell"


@dataclass(frozen=True)
class TransferGainResult:
    """Outcome of :func:`transfer_gain`.

    Attributes
    ----------
    gain : float
        Mean over folds of transfer score minus baseline score (positive:
        transfer helps).
    transfer_scores, baseline_scores : ndarray of shape (n_folds,)
        Test scores of each model on each fold (same folds for both).
    p_value : float
        Two-sided p-value of the corrected resampled paired t-test of "no
        difference"; NaN when the fold differences are all equal (the test
        is undefined).
    statistic : float
        The corrected t statistic (NaN when the differences are all equal).
    negative_transfer : bool
        ``verdict == "transfer hurts"``: the baseline is significantly
        better, so do not transfer.
    positive_transfer : bool
        ``verdict == "transfer helps"``.
    alpha : float
        Significance level.
    scoring : str or None
        Scoring used (``None``: the estimators' default ``score``).
    details : dict
        Test size ratio and degrees of freedom.
    verdict : {"transfer helps", "transfer hurts", "cannot tell"}
        The three-way answer. "cannot tell" when the difference is not
        significant, when there are fewer than ``min_folds`` folds, or when
        the fold differences have zero variance.
    reason : str
        Why the verdict was reached, in words.
    n_folds : int
        Number of folds the models were compared on.
    min_folds : int
        Fewest folds on which the test decides (``MIN_FOLDS_TO_DECIDE``).
    """

    gain: float
    transfer_scores: np.ndarray
    baseline_scores: np.ndarray
    p_value: float
    statistic: float
    negative_transfer: bool
    positive_transfer: bool
    alpha: float
    scoring: object = None
    details: dict[str, Any] = field(default_factory=dict, repr=False)
    verdict: str = CANNOT_TELL
    reason: str = ""
    n_folds: int = 0
    min_folds: int = MIN_FOLDS_TO_DECIDE

    def __str__(self) -> str:
        return (
            f"gain={self.gain:+.4f} (transfer {np.mean(self.transfer_scores):.4f} vs "
            f"baseline {np.mean(self.baseline_scores):.4f}, p={self.p_value:.3g}, "
            f"{self.n_folds} folds): {self.verdict}: {self.reason}"
        )


def corrected_paired_ttest(differences: ArrayLike, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau-Bengio corrected resampled t-test on per-fold score differences.

    With k folds, mean difference m and sample variance s² (``ddof=1``), the
    statistic is ``t = m / sqrt((1/k + test_train_ratio) * s²)``: the plain
    paired t statistic divided by ``sqrt(1 + k * test_train_ratio)``. It is
    referred to Student's t with ``k - 1`` degrees of freedom.

    Parameters
    ----------
    differences : array-like of shape (n_folds,)
        Per-fold score differences, at least 2.
    test_train_ratio : float
        Mean ``n_test / n_train`` of the folds; 0 gives the plain paired
        t-test.

    Returns
    -------
    statistic, p_value : float
        t statistic and two-sided p-value with ``n_folds - 1`` degrees of
        freedom; both NaN when the differences are all equal, since their
        spread is then unmeasured rather than zero.

    Examples
    --------
    >>> from sktransfer.shift._transfer_gain import corrected_paired_ttest
    >>> t, p = corrected_paired_ttest([0.02, 0.04, 0.03], test_train_ratio=0.5)
    >>> round(t, 3), round(p, 3)
    (3.286, 0.081)
    """
    differences = np.asarray(differences, dtype=float)
    n_folds = len(differences)
    if n_folds < 2:
        raise ValueError(f"The paired t-test needs at least 2 fold differences, got {n_folds}.")
    mean = differences.mean()
    variance = differences.var(ddof=1)
    if variance == 0:
        return math.nan, math.nan
    statistic = mean / np.sqrt((1.0 / n_folds + test_train_ratio) * variance)
    p_value = 2.0 * student_t.sf(abs(statistic), df=n_folds - 1)
    return float(statistic), float(p_value)


def _verdict(gain, p_value, n_folds, alpha):
    """The three-way answer and its reason."""
    if n_folds < MIN_FOLDS_TO_DECIDE:
        return CANNOT_TELL, (
            f"{n_folds} folds are too few to decide; the test needs at least "
            f"{MIN_FOLDS_TO_DECIDE} (use a larger cv, or RepeatedStratifiedKFold)"
        )
    if math.isnan(p_value):
        return CANNOT_TELL, (
            "the fold differences are all equal, so their spread is unmeasured "
            "(scores too coarse on small folds): use more samples per fold or "
            "repeated cross-validation"
        )
    if p_value >= alpha:
        return CANNOT_TELL, f"the difference is not significant at alpha={alpha}"
    return (HELPS if gain > 0 else HURTS), f"significant at alpha={alpha}"


@validate_params(
    {
        "transfer_estimator": [HasMethods(["fit"])],
        "baseline_estimator": [HasMethods(["fit"])],
        "X": ["array-like"],
        "y": ["array-like"],
        "X_baseline": ["array-like", None],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "n_jobs": [Integral, None],
    },
    prefer_skip_nested_validation=False,
)
def transfer_gain(
    transfer_estimator: Estimator,
    baseline_estimator: Estimator,
    X: ArrayLike | Sequence[Any],
    y: ArrayLike,
    *,
    X_baseline: ArrayLike | Sequence[Any] | None = None,
    cv: CVLike | None = 5,
    scoring: str | Callable[..., float] | None = None,
    alpha: float = 0.05,
    n_jobs: int | None = None,
) -> TransferGainResult:
    """Cross-validated gain of a transferred model over a target-only baseline.

    Both estimators are cloned and scored on the same folds; the per-fold
    differences are tested with the corrected resampled t-test. The
    ``verdict`` is "transfer helps", "transfer hurts" or "cannot tell". A
    decision needs at least ``MIN_FOLDS_TO_DECIDE`` (3) folds whose score
    differences are not all equal; with fewer folds, or all-equal differences
    (typical of a handful of samples per fold), the verdict is "cannot tell".

    Parameters
    ----------
    transfer_estimator : estimator
        The transferred model, e.g. ``make_pipeline(PretrainedFeatureExtractor(),
        LogisticRegression())``, or a classifier on precomputed embeddings.
    baseline_estimator : estimator
        The target-only model, e.g. a classifier on raw pixels.
    X : array-like or list of length n_samples
        Inputs of ``transfer_estimator`` (and of the baseline unless
        ``X_baseline`` is given).
    y : array-like of shape (n_samples,)
        Targets.
    X_baseline : array-like of length n_samples, default=None
        Other inputs for the baseline, row-aligned with ``X``: e.g. raw pixels
        when ``X`` holds precomputed embeddings.
    cv : int, cross-validation generator or iterable, default=5
        As in scikit-learn (stratified for classifiers); at least 3 folds for
        a decision. Repeated folds (``RepeatedStratifiedKFold``) make the
        test more reliable.
    scoring : str, callable or None, default=None
        Scorer; ``None`` uses the transfer estimator's ``score``.
    alpha : float, default=0.05
        Significance level of the verdict.
    n_jobs : int or None, default=None
        Parallel jobs of each ``cross_validate``.

    Returns
    -------
    result : TransferGainResult
        ``verdict``, ``gain``, fold scores, ``p_value``,
        ``negative_transfer``...

    References
    ----------
    C. Nadeau, Y. Bengio (2003). Inference for the generalization error.
    Machine Learning 52(3).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer import transfer_gain
    >>> X, y = load_digits(return_X_y=True)
    >>> result = transfer_gain(DummyClassifier(), LogisticRegression(max_iter=500),
    ...                        X[:400], y[:400], cv=3)
    >>> result.verdict, result.negative_transfer
    ('transfer hurts', True)
    """
    n_samples = _num_samples(X)
    if X_baseline is not None and _num_samples(X_baseline) != n_samples:
        raise ValueError(
            f"X_baseline has {_num_samples(X_baseline)} rows but X has {n_samples}; "
            "they must describe the same samples in the same order."
        )
    if _num_samples(y) != n_samples:
        raise ValueError(f"y has {_num_samples(y)} entries but X has {n_samples} rows.")
    splitter = check_cv(cv, y, classifier=is_classifier(transfer_estimator))
    # Materialised once so both models see exactly the same folds (paired test).
    folds = list(splitter.split(np.zeros((n_samples, 1)), y))
    transfer_scores = cross_validate(
        transfer_estimator, X, y, cv=folds, scoring=scoring, n_jobs=n_jobs, error_score="raise"
    )["test_score"]
    baseline_scores = cross_validate(
        baseline_estimator,
        X if X_baseline is None else X_baseline,
        y,
        cv=folds,
        scoring=scoring,
        n_jobs=n_jobs,
        error_score="raise",
    )["test_score"]
    differences = transfer_scores - baseline_scores
    test_train_ratio = float(np.mean([len(test) / len(train) for train, test in folds]))
    statistic, p_value = corrected_paired_ttest(differences, test_train_ratio)
    gain = float(differences.mean())
    verdict, reason = _verdict(gain, p_value, len(folds), alpha)
    return TransferGainResult(
        gain=gain,
        transfer_scores=transfer_scores,
        baseline_scores=baseline_scores,
        p_value=p_value,
        statistic=statistic,
        negative_transfer=verdict == HURTS,
        positive_transfer=verdict == HELPS,
        alpha=alpha,
        scoring=scoring,
        details={"test_train_ratio": test_train_ratio, "df": len(folds) - 1},
        verdict=verdict,
        reason=reason,
        n_folds=len(folds),
    )

"""When to transfer: does a transferred model beat a target-only baseline?

Transfer can hurt ("negative transfer"): ImageNet features of 8x8 grey digits
are a worse representation than the 64 raw pixels. :func:`transfer_gain`
scores both models on the *same* cross-validation folds and tests the paired
fold differences with the corrected resampled t-test of Nadeau and Bengio
(2003); the plain paired t-test ignores that CV training sets overlap and
reports far too many significant differences.
"""

from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from scipy.stats import t as student_t
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv, cross_validate
from sklearn.utils._param_validation import HasMethods, Interval, validate_params
from sklearn.utils.validation import _num_samples


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
        difference".
    statistic : float
        The corrected t statistic.
    negative_transfer : bool
        ``gain < 0`` and ``p_value < alpha``: the baseline is significantly
        better, so do not transfer.
    positive_transfer : bool
        ``gain > 0`` and ``p_value < alpha``.
    alpha : float
        Significance level.
    scoring : str or None
        Scoring used (``None``: the estimators' default ``score``).
    details : dict
        Test size ratio and degrees of freedom.
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
    details: dict = field(default_factory=dict, repr=False)

    def __str__(self):
        if self.negative_transfer:
            verdict = "NEGATIVE transfer: the target-only baseline is better"
        elif self.positive_transfer:
            verdict = "transfer helps"
        else:
            verdict = "no significant difference"
        return (
            f"gain={self.gain:+.4f} (transfer {np.mean(self.transfer_scores):.4f} vs "
            f"baseline {np.mean(self.baseline_scores):.4f}, p={self.p_value:.3g}): {verdict}"
        )


def corrected_paired_ttest(differences, test_train_ratio):
    """Nadeau-Bengio corrected resampled t-test on per-fold score differences.

    Parameters
    ----------
    differences : array-like of shape (n_folds,)
        Per-fold score differences.
    test_train_ratio : float
        Mean ``n_test / n_train`` of the folds.

    Returns
    -------
    statistic, p_value : float
        t statistic and two-sided p-value with ``n_folds - 1`` degrees of
        freedom.
    """
    differences = np.asarray(differences, dtype=float)
    n_folds = len(differences)
    mean = differences.mean()
    variance = differences.var(ddof=1)
    if variance == 0:
        # Identical differences on every fold: any non-zero gain is certain.
        return (np.inf * np.sign(mean) if mean else 0.0), (0.0 if mean else 1.0)
    statistic = mean / np.sqrt((1.0 / n_folds + test_train_ratio) * variance)
    p_value = 2.0 * student_t.sf(abs(statistic), df=n_folds - 1)
    return float(statistic), float(p_value)


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
    transfer_estimator,
    baseline_estimator,
    X,
    y,
    *,
    X_baseline=None,
    cv=5,
    scoring=None,
    alpha=0.05,
    n_jobs=None,
):
    """Cross-validated gain of a transferred model over a target-only baseline.

    Both estimators are cloned and scored on the same folds; the per-fold
    differences are tested with the corrected resampled t-test.

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
        As in scikit-learn (stratified for classifiers). Repeated folds
        (``RepeatedStratifiedKFold``) make the test more reliable.
    scoring : str, callable or None, default=None
        Scorer; ``None`` uses the transfer estimator's ``score``.
    alpha : float, default=0.05
        Significance level for ``negative_transfer``/``positive_transfer``.
    n_jobs : int or None, default=None
        Parallel jobs of each ``cross_validate``.

    Returns
    -------
    result : TransferGainResult
        ``gain``, fold scores, ``p_value``, ``negative_transfer``...

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
    >>> result.negative_transfer
    True
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
    significant = p_value < alpha
    return TransferGainResult(
        gain=gain,
        transfer_scores=transfer_scores,
        baseline_scores=baseline_scores,
        p_value=p_value,
        statistic=statistic,
        negative_transfer=bool(significant and gain < 0),
        positive_transfer=bool(significant and gain > 0),
        alpha=alpha,
        scoring=scoring,
        details={"test_train_ratio": test_train_ratio, "df": len(folds) - 1},
    )

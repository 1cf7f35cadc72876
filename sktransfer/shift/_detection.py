"""Two-sample tests for dataset shift between reference and new features.

The three tests of the "Failing Loudly" study (Rabanser et al., 2019), which
found them the most useful on learned representations:

* ``"mmd"``: maximum mean discrepancy with a Gaussian kernel (median-heuristic
  bandwidth) and a permutation test (Gretton et al., 2012);
* ``"ks"``: a Kolmogorov-Smirnov test per feature with a Bonferroni
  correction;
* ``"classifier"``: a domain classifier fitted on a random half of the rows,
  its ROC AUC on the other half tested against 0.5 with the Mann-Whitney U
  statistic (AUC is U / (n_ref · n_new)). Scoring held-out rows of a single
  model keeps the test exact; pooling out-of-fold scores of several
  cross-validation models would not (their scores are not exchangeable), and
  rejects more often than alpha without shift.

Each test has a smallest p-value it can reach with the given sample sizes
(e.g. a permutation test of 3 against 3 rows has only 20 distinct splits).
When that floor is not below alpha the test cannot reject whatever the data,
so the answer is "cannot tell", never "no shift".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist
from scipy.stats import ks_2samp, mannwhitneyu
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params

from .._typing import Estimator, RandomStateLike
from ._base import (
    check_domain_features,
    check_same_feature_space,
    default_domain_classifier,
    domain_labels,
)

# Pairwise distances for the median heuristic are computed on at most this
# many rows: the median is stable long before, and it keeps memory bounded.
_MEDIAN_HEURISTIC_ROWS = 1000


SHIFT, NO_SHIFT_DETECTED, CANNOT_TELL = "shift", "no shift detected", "cannot tell"


@dataclass(frozen=True)
class ShiftTestResult:
    """Outcome of :func:`detect_shift`.

    Attributes
    ----------
    is_shift : bool
        ``decision == "shift"``: ``p_value < alpha`` on samples large enough
        for the test to decide.
    p_value : float
        P-value of the test of "same distribution".
    statistic : float
        The test statistic: MMD² (``"mmd"``), the largest per-feature KS
        statistic (``"ks"``) or the held-out domain-classifier AUC
        (``"classifier"``).
    method : str
        Test used.
    alpha : float
        Significance level.
    details : dict
        Method-specific extras (bandwidth and permutations, per-feature
        p-values, AUC...) and ``smallest_p_value``.
    decision : {"shift", "no shift detected", "cannot tell"}
        "cannot tell" when ``smallest_p_value >= alpha``: the samples are too
        small for this test to ever reject, so a large p-value says nothing.
    smallest_p_value : float
        The smallest p-value the test can reach with these sample sizes (and
        permutations), whatever the data.
    """

    is_shift: bool
    p_value: float
    statistic: float
    method: str
    alpha: float
    details: dict[str, Any] = field(default_factory=dict, repr=False)
    decision: str = NO_SHIFT_DETECTED
    smallest_p_value: float = 0.0

    def __str__(self) -> str:
        text = (
            f"{self.method} test: {self.decision} (statistic={self.statistic:.4g}, "
            f"p={self.p_value:.3g}, alpha={self.alpha})"
        )
        if self.decision == CANNOT_TELL:
            text += (
                f": with {self.details.get('n_ref')} and {self.details.get('n_new')} rows "
                f"its p-value cannot go below {self.smallest_p_value:.3g}; use more rows"
            )
        return text


def _smallest_permutation_p_value(n_ref, n_new, n_permutations):
    """Floor of the MMD permutation p-value: one split in C(n, n_ref) is the observed one.

    With equal sizes the split with the two domains swapped has the same
    statistic, so two splits are as extreme; and the Monte-Carlo p-value
    ``(1 + exceed) / (1 + n_permutations)`` is never below ``1 / (1 + n_permutations)``.
    """
    n_extreme = 2 if n_ref == n_new else 1
    exact = n_extreme / math.comb(n_ref + n_new, n_ref)
    return max(exact, 1.0 / (1 + n_permutations))


def _smallest_ks_p_value(n_ref, n_new, n_features):
    """Floor of the Bonferroni KS p-value: fully separated samples on one feature."""
    separated = ks_2samp(np.arange(n_ref), np.arange(n_ref, n_ref + n_new)).pvalue
    return min(1.0, n_features * float(separated))


def _smallest_rank_p_value(n_ref_test, n_new_test):
    """Floor of the one-sided Mann-Whitney p-value: every new row ranked above every reference row."""
    return float(mannwhitneyu(np.arange(n_new_test) + n_ref_test, np.arange(n_ref_test), alternative="greater").pvalue)


def _mmd_test(X_ref, X_new, n_permutations, rng):
    pooled = np.vstack([X_ref, X_new])
    sample = pooled[rng.choice(len(pooled), min(len(pooled), _MEDIAN_HEURISTIC_ROWS), replace=False)]
    sq_dists = cdist(sample, sample, "sqeuclidean")
    median_sq_dist = np.median(sq_dists[np.triu_indices_from(sq_dists, k=1)])
    gamma = 1.0 / median_sq_dist if median_sq_dist > 0 else 1.0
    kernel = np.exp(-gamma * cdist(pooled, pooled, "sqeuclidean"))
    n_ref, n_total = len(X_ref), len(pooled)

    def mmd2(is_ref):
        # Biased MMD² = vᵀKv with v = 1/n_ref on reference rows and -1/n_new on
        # new rows; columns of `is_ref` are label assignments (one per column).
        signs = np.where(is_ref, 1.0 / n_ref, -1.0 / (n_total - n_ref))
        return np.einsum("ip,ip->p", signs, kernel @ signs)

    observed = float(mmd2(np.arange(n_total)[:, None] < n_ref)[0])
    exceed = 0
    for start in range(0, n_permutations, 100):
        batch = min(100, n_permutations - start)
        permuted = np.argsort(rng.random((n_total, batch)), axis=0) < n_ref
        exceed += int(np.sum(mmd2(permuted) >= observed))
    p_value = (1 + exceed) / (1 + n_permutations)
    details = {
        "bandwidth_gamma": gamma,
        "n_permutations": n_permutations,
        "smallest_p_value": _smallest_permutation_p_value(n_ref, n_total - n_ref, n_permutations),
    }
    return observed, p_value, details


def _ks_test(X_ref, X_new):
    results = [ks_2samp(X_ref[:, j], X_new[:, j]) for j in range(X_ref.shape[1])]
    statistics = np.array([r.statistic for r in results])
    p_values = np.array([r.pvalue for r in results])
    n_features = X_ref.shape[1]
    p_value = min(1.0, n_features * float(np.min(p_values)))
    details = {
        "feature_statistics": statistics,
        "feature_p_values": p_values,
        "smallest_p_value": _smallest_ks_p_value(len(X_ref), len(X_new), n_features),
    }
    return float(np.max(statistics)), p_value, details


def _classifier_test(X_ref, X_new, classifier, test_size, rng):
    X = np.vstack([X_ref, X_new])
    domain = domain_labels(len(X_ref), len(X_new))
    fit_rows, test_rows = train_test_split(
        np.arange(len(X)),
        test_size=test_size,
        stratify=domain,
        random_state=rng.randint(np.iinfo(np.int32).max),
    )
    classifier = default_domain_classifier() if classifier is None else clone(classifier)
    classifier.fit(X[fit_rows], domain[fit_rows])
    target_column = list(classifier.classes_).index(1)
    scores = classifier.predict_proba(X[test_rows])[:, target_column]
    held_out_domain = domain[test_rows]
    auc = float(roc_auc_score(held_out_domain, scores))
    # One-sided: a shift can only make new rows *more* recognisable as new.
    p_value = float(
        mannwhitneyu(scores[held_out_domain == 1], scores[held_out_domain == 0], alternative="greater").pvalue
    )
    details = {
        "auc": auc,
        "n_test": len(test_rows),
        "smallest_p_value": _smallest_rank_p_value(
            int(np.sum(held_out_domain == 0)), int(np.sum(held_out_domain == 1))
        ),
    }
    return auc, p_value, details


@validate_params(
    {
        "X_ref": ["array-like"],
        "X_new": ["array-like"],
        "method": [StrOptions({"mmd", "ks", "classifier"})],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "n_permutations": [Interval(Integral, 1, None, closed="left")],
        "classifier": [HasMethods(["fit", "predict_proba"]), None],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def detect_shift(
    X_ref: ArrayLike,
    X_new: ArrayLike,
    method: Literal["mmd", "ks", "classifier"] = "mmd",
    alpha: float = 0.05,
    *,
    n_permutations: int = 500,
    classifier: Estimator | None = None,
    test_size: float = 0.5,
    random_state: RandomStateLike = None,
) -> ShiftTestResult:
    """Test whether ``X_new`` comes from the same distribution as ``X_ref``.

    Parameters
    ----------
    X_ref : array-like of shape (n_ref, n_features)
        Reference features (e.g. training embeddings).
    X_new : array-like of shape (n_new, n_features)
        New features from the same backbone (e.g. deployment embeddings).
    method : {"mmd", "ks", "classifier"}, default="mmd"
        Two-sample test; see the module notes. MMD sees any difference in
        distribution, KS only per-feature marginal differences, the classifier
        test whatever its classifier can learn.
    alpha : float, default=0.05
        Significance level: ``is_shift`` is ``p_value < alpha``, on samples
        large enough to decide (see Notes).
    n_permutations : int, default=500
        Permutations of the MMD test; the smallest attainable p-value is
        ``1 / (n_permutations + 1)``, so a decision needs
        ``n_permutations >= 1 / alpha``. The MMD test holds the full
        ``(n_ref + n_new)²`` kernel matrix (8 bytes an entry): subsample large
        samples.
    classifier : classifier with ``predict_proba``, default=None
        Domain classifier of the ``"classifier"`` test; ``None`` means
        standardisation + logistic regression.
    test_size : float, default=0.5
        Share of the rows (stratified by domain) on which the ``"classifier"``
        test scores its domain classifier; it is fitted on the rest.
    random_state : int, RandomState instance or None, default=None
        Seed of permutations, bandwidth subsample and folds.

    Returns
    -------
    result : ShiftTestResult
        ``decision`` ("shift", "no shift detected" or "cannot tell"),
        ``is_shift``, ``p_value``, ``statistic``, ``smallest_p_value``,
        ``method``, ``alpha`` and method ``details``.

    Notes
    -----
    Smallest samples. Each test decides only when the smallest p-value it
    can reach with the given sizes is below ``alpha``; otherwise the
    ``decision`` is "cannot tell" (and ``is_shift`` is False) whatever the
    data. At ``alpha=0.05``:

    * ``"mmd"``: ``2 / C(2n, n)`` for n rows on each side, else
      ``1 / C(n_ref + n_new, n_ref)``: 4 + 4 rows (or 3 + 4), and at least
      20 permutations;
    * ``"ks"``: ``n_features`` times the KS p-value of two fully separated
      samples: 4 + 4 rows for one feature, 6 + 6 for 10 features, 10 + 10
      for 1,280 features;
    * ``"classifier"``: the one-sided Mann-Whitney p-value of fully separated
      held-out rows: with ``test_size=0.5``, 7 + 7 rows (3 + 4 held out).

    ``smallest_p_value`` on the result gives the floor for the sizes used.

    References
    ----------
    S. Rabanser, S. Günnemann, Z. Lipton (2019). Failing loudly: an empirical
    study of methods for detecting dataset shift. NeurIPS.

    A. Gretton, K. Borgwardt, M. Rasch, B. Schölkopf, A. Smola (2012). A
    kernel two-sample test. JMLR 13.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import detect_shift
    >>> rng = np.random.default_rng(0)
    >>> X_ref = rng.normal(size=(200, 5))
    >>> X_new = rng.normal(size=(200, 5)) + 0.5
    >>> detect_shift(X_ref, X_new, method="mmd", random_state=0).is_shift
    True
    """
    X_ref = check_domain_features(X_ref, "X_ref", ensure_min_samples=2)
    X_new = check_domain_features(X_new, "X_new", ensure_min_samples=2)
    check_same_feature_space(X_ref, X_new, "X_ref", "X_new")
    rng = check_random_state(random_state)
    if method == "mmd":
        statistic, p_value, details = _mmd_test(X_ref, X_new, n_permutations, rng)
    elif method == "ks":
        statistic, p_value, details = _ks_test(X_ref, X_new)
    else:
        statistic, p_value, details = _classifier_test(X_ref, X_new, classifier, test_size, rng)
    details = {"n_ref": len(X_ref), "n_new": len(X_new), **details}
    smallest_p_value = details["smallest_p_value"]
    if smallest_p_value >= alpha:
        decision = CANNOT_TELL
    else:
        decision = SHIFT if p_value < alpha else NO_SHIFT_DETECTED
    return ShiftTestResult(
        is_shift=decision == SHIFT,
        p_value=float(p_value),
        statistic=float(statistic),
        method=method,
        alpha=alpha,
        details=details,
        decision=decision,
        smallest_p_value=float(smallest_p_value),
    )

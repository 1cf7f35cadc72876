"""Bad-input catalogue of the domain-shift tools: one row per fault.

Each row is (id, a callable that commits the fault, the expectation): either
``raises(ExceptionType, message fragment)``, ``warns(WarningType, fragment)``
or ``policy(check)``, where ``check`` asserts the documented behaviour on the
callable's result (e.g. a "cannot tell" answer instead of "no shift").
"""

from collections import namedtuple

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import (
    CORAL,
    DomainClassifierWeighter,
    ImportanceWeightedClassifier,
    LabelShiftAdapter,
    ResampledClassifier,
    detect_shift,
    make_importance_weighted_scorer,
    transfer_gain,
)
from sktransfer.shift._transfer_gain import corrected_paired_ttest

Raises = namedtuple("Raises", "type fragment")
Warns = namedtuple("Warns", "type fragment")
Policy = namedtuple("Policy", "check description")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 2))
Y = np.repeat([0, 1], 20)
X_NAN = X.copy()
X_NAN[3, 1] = np.nan
FAR = 20.0  # a shift no test can miss once it is able to decide


def normal(n, d=1, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def label_shift_source(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 150)
    return np.array([[-3.0, 0.0], [3.0, 0.0]])[y] + rng.normal(size=(300, 2)), y


def unseen_class_target(seed=1):
    """80% of the target from a class at (0, 3) that the source never had."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=200, p=[0.1, 0.1, 0.8])
    return np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[y] + rng.normal(size=(200, 2))


def fitted_adapter():
    return LabelShiftAdapter().fit(*label_shift_source())


def cannot_tell(result):
    assert result.decision == "cannot tell" and not result.is_shift
    assert result.smallest_p_value >= result.alpha


def transfer_cannot_tell(result):
    assert result.verdict == "cannot tell"
    assert not result.positive_transfer and not result.negative_transfer


def four_samples_two_folds():
    X4, y4 = np.array([[0.0], [1.0], [10.0], [11.0]]), np.array([0, 0, 1, 1])
    return transfer_gain(LogisticRegression(), DummyClassifier(), X4, y4, cv=2)


def zero_variance_three_folds():
    X6, y6 = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]]), np.repeat([0, 1], 3)
    return transfer_gain(LogisticRegression(), DummyClassifier(), X6, y6, cv=3)


class KeepOneClassSampler:
    """A broken sampler that drops every row of class 1."""

    def fit_resample(self, X, y):
        return X[y == 0], y[y == 0]


ROWS = [
    # --- detect_shift ---
    (
        "detect_shift: different feature spaces",
        lambda: detect_shift(normal(10, 3), normal(10, 2)),
        Raises(ValueError, "same backbone"),
    ),
    (
        "detect_shift: NaN in X_ref",
        lambda: detect_shift(X_NAN, X),
        Raises(ValueError, "X_ref: Input X_ref contains NaN"),
    ),
    ("detect_shift: one row in X_new", lambda: detect_shift(normal(10), normal(1)), Raises(ValueError, "X_new")),
    (
        "detect_shift: unknown method",
        lambda: detect_shift(X, X, method="wasserstein"),
        Raises(InvalidParameterError, "method"),
    ),
    (
        "detect_shift: alpha outside (0, 1)",
        lambda: detect_shift(X, X, alpha=1.5),
        Raises(InvalidParameterError, "alpha"),
    ),
    (
        "mmd: 3 + 3 rows is below its smallest sample",
        lambda: detect_shift(normal(3), normal(3, shift=FAR), "mmd", random_state=0),
        Policy(cannot_tell, "cannot tell, not 'no shift'"),
    ),
    (
        "mmd: fewer permutations than 1 / alpha",
        lambda: detect_shift(normal(30), normal(30, shift=FAR), "mmd", n_permutations=10),
        Policy(cannot_tell, "cannot tell"),
    ),
    (
        "ks: 3 + 3 rows is below its smallest sample",
        lambda: detect_shift(normal(3), normal(3, shift=FAR), "ks"),
        Policy(cannot_tell, "cannot tell"),
    ),
    (
        "ks: 9 + 9 rows of 1280 features (Bonferroni floor)",
        lambda: detect_shift(normal(9, 1280), normal(9, 1280, shift=FAR), "ks"),
        Policy(cannot_tell, "cannot tell"),
    ),
    (
        "classifier test: 6 + 6 rows (3 + 3 held out)",
        lambda: detect_shift(normal(6), normal(6, shift=FAR), "classifier", random_state=0),
        Policy(cannot_tell, "cannot tell (it raised below 4 rows, said 'no shift' above)"),
    ),
    (
        "classifier test: 2 + 2 rows still runs",
        lambda: detect_shift(normal(2), normal(2, shift=FAR), "classifier", random_state=0),
        Policy(cannot_tell, "cannot tell"),
    ),
    # --- transfer_gain ---
    (
        "transfer_gain: 4 samples, cv=2 (equal differences)",
        four_samples_two_folds,
        Policy(transfer_cannot_tell, "cannot tell, not p=0"),
    ),
    (
        "transfer_gain: zero-variance differences on 3 folds",
        zero_variance_three_folds,
        Policy(transfer_cannot_tell, "cannot tell"),
    ),
    (
        "transfer_gain: X_baseline with other rows",
        lambda: transfer_gain(DummyClassifier(), DummyClassifier(), X, Y, X_baseline=X[:10]),
        Raises(ValueError, "X_baseline has 10 rows but X has 40"),
    ),
    (
        "transfer_gain: y shorter than X",
        lambda: transfer_gain(DummyClassifier(), DummyClassifier(), X, Y[:30]),
        Raises(ValueError, "y has 30 entries but X has 40 rows"),
    ),
    (
        "transfer_gain: alpha = 0",
        lambda: transfer_gain(DummyClassifier(), DummyClassifier(), X, Y, alpha=0.0),
        Raises(InvalidParameterError, "alpha"),
    ),
    (
        "corrected_paired_ttest: a single fold",
        lambda: corrected_paired_ttest([0.1], 0.25),
        Raises(ValueError, "at least 2 fold differences"),
    ),
    # --- LabelShiftAdapter ---
    (
        "LabelShiftAdapter: single-class y",
        lambda: LabelShiftAdapter().fit(X, np.zeros(40)),
        Raises(ValueError, "y has one class"),
    ),
    (
        "LabelShiftAdapter: a class with one sample",
        lambda: LabelShiftAdapter().fit(X, np.r_[np.zeros(39), 1]),
        Raises(ValueError, "only 1 sample"),
    ),
    ("LabelShiftAdapter: NaN in X", lambda: LabelShiftAdapter().fit(X_NAN, Y), Raises(ValueError, "NaN")),
    (
        "fit_target: a single target sample",
        lambda: fitted_adapter().fit_target(unseen_class_target()[:1]),
        Raises(ValueError, "at least 25"),
    ),
    (
        "fit_target: 24 target samples",
        lambda: fitted_adapter().fit_target(unseen_class_target()[:24]),
        Raises(ValueError, "has 24 sample(s)"),
    ),
    (
        "fit_target: most of the target from an unseen class",
        lambda: fitted_adapter().fit_target(unseen_class_target()),
        Warns(UserWarning, "outside the source's support"),
    ),
    (
        "fit_target: other feature count",
        lambda: fitted_adapter().fit_target(normal(30, 3)),
        Raises(ValueError, "features"),
    ),
    (
        "fit_target before fit",
        lambda: LabelShiftAdapter().fit_target(normal(30, 2)),
        Raises(NotFittedError, "not fitted"),
    ),
    (
        "LabelShiftAdapter: estimator without predict_proba",
        lambda: LabelShiftAdapter(LinearSVC()).fit(X, Y),
        Raises(InvalidParameterError, "estimator"),
    ),
    # --- CORAL and importance weighting ---
    (
        "CORAL: different feature spaces",
        lambda: CORAL().fit(normal(10, 1280), X_target=normal(10, 1024)),
        Raises(ValueError, "same backbone"),
    ),
    (
        "CORAL: infinity in X_target",
        lambda: CORAL().fit(X, X_target=np.r_[X[:5], [[np.inf, 0.0]]]),
        Raises(ValueError, "X_target: Input X_target contains infinity"),
    ),
    (
        "DomainClassifierWeighter: fewer target rows than folds",
        lambda: DomainClassifierWeighter().fit(X, X[:3]),
        Raises(ValueError, "X_target: Found array with 3 sample(s)"),
    ),
    (
        "DomainClassifierWeighter: different feature spaces",
        lambda: DomainClassifierWeighter().fit(normal(10, 3), normal(10, 4)),
        Raises(ValueError, "same backbone"),
    ),
    (
        "ImportanceWeightedClassifier: estimator without sample_weight",
        lambda: ImportanceWeightedClassifier(KNeighborsClassifier()).fit(X, Y, X_target=X + 1),
        Raises(ValueError, "does not accept sample_weight"),
    ),
    (
        "ImportanceWeightedClassifier: no target at all",
        lambda: ImportanceWeightedClassifier().fit(X, Y),
        Warns(UserWarning, "no target data"),
    ),
    (
        "importance-weighted scorer: one weight too few",
        lambda: make_importance_weighted_scorer()(LogisticRegression().fit(X, Y), X, Y, np.ones(39)),
        Raises(ValueError, "importance_weight has shape (39,)"),
    ),
    (
        "importance-weighted scorer: weighter without compute_weights",
        lambda: make_importance_weighted_scorer(weighter=object()),
        Raises(TypeError, "compute_weights"),
    ),
    # --- ResampledClassifier ---
    (
        "ResampledClassifier: single-class y",
        lambda: ResampledClassifier().fit(X, np.zeros(40)),
        Raises(ValueError, "y has one class"),
    ),
    (
        "ResampledClassifier: None among string labels",
        lambda: ResampledClassifier().fit(X, np.array(["a"] * 20 + [None] * 20, dtype=object)),
        Raises(TypeError, "None among strings"),
    ),
    (
        "ResampledClassifier: 'minority' for under-sampling",
        lambda: ResampledClassifier(sampling_strategy="minority").fit(X, Y),
        Raises(ValueError, "makes no sense for under-sampling"),
    ),
    (
        "ResampledClassifier: float strategy with 3 classes",
        lambda: ResampledClassifier(sampling_strategy=0.5).fit(X[:39], np.repeat([0, 1, 2], 13)),
        Raises(ValueError, "only defined for binary"),
    ),
    (
        "ResampledClassifier: sampling_strategy with a custom sampler",
        lambda: ResampledClassifier(sampler=KeepOneClassSampler(), sampling_strategy="all").fit(X, Y),
        Raises(ValueError, "set the sampling strategy on your sampler"),
    ),
    (
        "ResampledClassifier: a sampler that drops a class",
        lambda: ResampledClassifier(sampler=KeepOneClassSampler()).fit(X, Y),
        Raises(ValueError, "removed every sample of classes [1]"),
    ),
    (
        "ResampledClassifier: predict before fit",
        lambda: ResampledClassifier().predict(X),
        Raises(NotFittedError, "not fitted"),
    ),
    (
        "ResampledClassifier: predict with other feature count",
        lambda: ResampledClassifier(random_state=0).fit(X, Y).predict(normal(5, 3)),
        Raises(ValueError, "features"),
    ),
]


@pytest.mark.parametrize("fault, expectation", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input(fault, expectation):
    if isinstance(expectation, Raises):
        with pytest.raises(expectation.type) as info:
            fault()
        assert expectation.fragment in str(info.value)
    elif isinstance(expectation, Warns):
        with pytest.warns(expectation.type) as record:
            fault()
        assert any(expectation.fragment in str(w.message) for w in record)
    else:
        expectation.check(fault())


def test_catalogue_ids_are_unique():
    ids = [row[0] for row in ROWS]
    assert len(ids) == len(set(ids)) and len(ids) >= 15

"""transfer_gain: paired folds, the corrected t-test, and the three-way verdict."""

import numpy as np
import pytest
from scipy.stats import t as student_t
from scipy.stats import ttest_rel
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold, cross_val_score

from sktransfer import TransferGainResult, transfer_gain
from sktransfer.shift._transfer_gain import MIN_FOLDS_TO_DECIDE, corrected_paired_ttest


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def test_negative_transfer_fires_when_the_baseline_is_better(digits):
    X, y = digits
    result = transfer_gain(DummyClassifier(), LogisticRegression(max_iter=1000), X, y, cv=5)
    assert isinstance(result, TransferGainResult)
    assert result.verdict == "transfer hurts"
    assert result.negative_transfer and not result.positive_transfer
    assert result.transfer_scores.shape == result.baseline_scores.shape == (5,)
    # The reported gain and statistic are those of the fold scores it returns.
    differences = result.transfer_scores - result.baseline_scores
    assert result.gain == pytest.approx(differences.mean())
    assert result.gain < -0.5
    ratio = result.details["test_train_ratio"]
    assert result.statistic == pytest.approx(corrected_paired_ttest(differences, ratio)[0])
    assert result.n_folds == 5 and result.details["df"] == 4


def test_positive_transfer_does_not_flag_negative(digits):
    X, y = digits
    result = transfer_gain(LogisticRegression(max_iter=1000), DummyClassifier(), X, y, cv=5)
    assert result.gain > 0.5
    assert result.verdict == "transfer helps"
    assert result.positive_transfer and not result.negative_transfer
    assert "transfer helps" in str(result)


def test_identical_models_cannot_tell(digits):
    X, y = digits
    model = LogisticRegression(max_iter=1000)
    result = transfer_gain(model, model, X, y, cv=3)
    # Equal scores on every fold: zero variance is "cannot tell", not "p=1" or "p=0".
    assert result.gain == 0.0 and np.isnan(result.p_value)
    assert result.verdict == "cannot tell" and "all equal" in result.reason
    assert not result.negative_transfer and not result.positive_transfer


def test_baseline_uses_its_own_inputs_on_the_same_folds(digits):
    X, y = digits
    rng = np.random.default_rng(0)
    X_embedded = X + rng.normal(scale=0.5, size=X.shape)  # stands in for other features
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    result = transfer_gain(
        LogisticRegression(max_iter=1000),
        LogisticRegression(max_iter=1000),
        X_embedded,
        y,
        X_baseline=X,
        cv=cv,
        scoring="accuracy",
    )
    expected_baseline = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=cv)
    expected_transfer = cross_val_score(LogisticRegression(max_iter=1000), X_embedded, y, cv=cv)
    np.testing.assert_allclose(result.baseline_scores, expected_baseline)
    np.testing.assert_allclose(result.transfer_scores, expected_transfer)
    # Folds of 200 train / 100 test rows.
    assert result.details["test_train_ratio"] == pytest.approx(0.5)


def test_corrected_test_is_the_paired_t_test_at_ratio_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.02, 10)
    b = a - 0.01 + rng.normal(0, 0.01, 10)
    statistic, p_value = corrected_paired_ttest(a - b, test_train_ratio=0.0)
    reference = ttest_rel(a, b)
    assert statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert p_value == pytest.approx(reference.pvalue, rel=1e-10)


@pytest.mark.parametrize("ratio", [0.1, 0.25, 1.0])
def test_corrected_statistic_is_the_naive_one_over_sqrt_1_plus_k_ratio(ratio):
    rng = np.random.default_rng(1)
    differences = rng.normal(0.02, 0.03, 8)
    naive = ttest_rel(differences, np.zeros(8)).statistic
    statistic, p_value = corrected_paired_ttest(differences, test_train_ratio=ratio)
    # Nadeau-Bengio: variance factor 1/k + r instead of 1/k, i.e. t / sqrt(1 + k r).
    assert statistic == pytest.approx(naive / np.sqrt(1 + 8 * ratio), rel=1e-12)
    assert p_value == pytest.approx(2 * student_t.sf(abs(statistic), df=7), rel=1e-12)


def test_corrected_statistic_by_hand():
    # mean 0.03, sample variance 1e-4, k = 3, r = 0.5: t = 0.03 / sqrt(0.8333e-4).
    statistic, _ = corrected_paired_ttest([0.02, 0.04, 0.03], test_train_ratio=0.5)
    assert statistic == pytest.approx(0.03 / np.sqrt((1 / 3 + 0.5) * 1e-4), rel=1e-12)


def test_four_samples_two_folds_is_cannot_tell_not_p_zero():
    # The reported defect: 4 samples, cv=2, equal differences on both folds
    # used to give p=0 ("transfer helps") from a zero-variance division.
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1])
    result = transfer_gain(LogisticRegression(), DummyClassifier(), X, y, cv=2)
    np.testing.assert_allclose(result.transfer_scores - result.baseline_scores, [0.5, 0.5])
    assert result.verdict == "cannot tell"
    assert not result.positive_transfer
    assert result.n_folds == 2 and result.min_folds == MIN_FOLDS_TO_DECIDE == 3
    assert "at least 3" in result.reason


def test_zero_variance_with_enough_folds_is_still_cannot_tell():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    result = transfer_gain(LogisticRegression(), DummyClassifier(), X, y, cv=3)
    assert result.gain == pytest.approx(0.5)
    assert np.isnan(result.p_value) and np.isnan(result.statistic)
    assert result.verdict == "cannot tell" and "all equal" in result.reason


def test_two_folds_cannot_decide_even_with_a_clear_effect(digits):
    X, y = digits
    result = transfer_gain(LogisticRegression(max_iter=1000), DummyClassifier(), X, y, cv=2)
    assert result.gain > 0.5
    assert result.verdict == "cannot tell" and not result.positive_transfer


def test_repeated_folds_are_paired_and_counted(digits):
    X, y = digits
    cv = RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0)
    result = transfer_gain(LogisticRegression(max_iter=1000), DummyClassifier(), X, y, cv=cv)
    assert result.n_folds == 6 and result.details["df"] == 5
    assert result.verdict == "transfer helps"


def test_not_significant_is_cannot_tell(digits):
    X, y = digits
    # Two regularisation strengths that score almost alike: no decision.
    result = transfer_gain(
        LogisticRegression(C=1.0, max_iter=1000),
        LogisticRegression(C=0.5, max_iter=1000),
        X,
        y,
        cv=5,
    )
    assert result.p_value >= result.alpha
    assert result.verdict == "cannot tell" and "not significant" in result.reason


def test_row_count_mismatch_is_a_clear_error(digits):
    X, y = digits
    with pytest.raises(ValueError, match="X_baseline has 10 rows"):
        transfer_gain(DummyClassifier(), DummyClassifier(), X, y, X_baseline=X[:10])

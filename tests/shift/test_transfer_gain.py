"""transfer_gain: paired folds, corrected t-test, negative-transfer flag."""

import numpy as np
import pytest
from scipy.stats import ttest_rel
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from sktransfer import TransferGainResult, transfer_gain
from sktransfer.shift._transfer_gain import corrected_paired_ttest


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def test_negative_transfer_fires_when_the_baseline_is_better(digits):
    X, y = digits
    result = transfer_gain(DummyClassifier(), LogisticRegression(max_iter=1000), X, y, cv=5)
    assert isinstance(result, TransferGainResult)
    assert result.gain < -0.5
    assert result.negative_transfer and not result.positive_transfer
    assert result.transfer_scores.shape == result.baseline_scores.shape == (5,)


def test_positive_transfer_does_not_flag_negative(digits):
    X, y = digits
    result = transfer_gain(LogisticRegression(max_iter=1000), DummyClassifier(), X, y, cv=5)
    assert result.gain > 0.5
    assert result.positive_transfer and not result.negative_transfer


def test_identical_models_give_no_gain(digits):
    X, y = digits
    model = LogisticRegression(max_iter=1000)
    result = transfer_gain(model, model, X, y, cv=3)
    assert result.gain == 0.0 and result.p_value == 1.0
    assert not result.negative_transfer and not result.positive_transfer


def test_baseline_uses_its_own_inputs_on_the_same_folds(digits):
    X, y = digits
    rng = np.random.default_rng(0)
    X_embedded = X + rng.normal(scale=0.5, size=X.shape)  # stands in for other features
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    result = transfer_gain(
        LogisticRegression(max_iter=1000), LogisticRegression(max_iter=1000),
        X_embedded, y, X_baseline=X, cv=cv, scoring="accuracy",
    )
    expected_baseline = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=cv)
    expected_transfer = cross_val_score(LogisticRegression(max_iter=1000), X_embedded, y, cv=cv)
    np.testing.assert_allclose(result.baseline_scores, expected_baseline)
    np.testing.assert_allclose(result.transfer_scores, expected_transfer)


def test_corrected_test_is_more_conservative_than_the_naive_paired_test():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.02, 10)
    b = a - 0.01 + rng.normal(0, 0.01, 10)
    _, corrected_p = corrected_paired_ttest(a - b, test_train_ratio=0.25)
    naive_p = ttest_rel(a, b).pvalue
    assert corrected_p > naive_p


def test_row_count_mismatch_is_a_clear_error(digits):
    X, y = digits
    with pytest.raises(ValueError, match="X_baseline has 10 rows"):
        transfer_gain(DummyClassifier(), DummyClassifier(), X, y, X_baseline=X[:10])

"""detect_shift: false-positive rate near alpha without shift, power with it."""

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import ShiftTestResult, detect_shift

ALPHA = 0.05


@pytest.mark.parametrize(
    "method, n_repeats, kwargs",
    [
        ("mmd", 200, {"n_permutations": 99}),
        ("ks", 300, {}),
        ("classifier", 100, {}),
    ],
)
def test_false_positive_rate_near_alpha_without_shift(method, n_repeats, kwargs):
    rng = np.random.default_rng(0)
    rejections = [
        detect_shift(
            rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), method, ALPHA,
            random_state=i, **kwargs,
        ).is_shift
        for i in range(n_repeats)
    ]
    rate = np.mean(rejections)
    # A valid test rejects at most alpha of the time; allow ~3 binomial sd of
    # Monte-Carlo noise above it (Bonferroni KS may be conservative, so no
    # lower bound beyond "not always zero" for the exact permutation test).
    assert rate <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / n_repeats)
    if method == "mmd":
        assert rate > 0.0


@pytest.mark.parametrize("method", ["mmd", "ks", "classifier"])
def test_detects_a_mean_shift(method):
    rng = np.random.default_rng(1)
    X_ref = rng.normal(size=(200, 10))
    X_new = rng.normal(size=(200, 10))
    X_new[:, :3] += 0.6  # a shift in 3 of 10 features, 0.6 sd
    result = detect_shift(X_ref, X_new, method=method, random_state=0)
    assert isinstance(result, ShiftTestResult)
    assert result.is_shift
    assert result.p_value < 0.01
    assert result.method == method


def test_mmd_detects_a_variance_only_shift():
    rng = np.random.default_rng(2)
    result = detect_shift(rng.normal(size=(200, 3)), 2.0 * rng.normal(size=(200, 3)), "mmd", random_state=0)
    assert result.is_shift


def test_result_details():
    rng = np.random.default_rng(3)
    X_ref, X_new = rng.normal(size=(50, 6)), rng.normal(size=(60, 6))
    ks = detect_shift(X_ref, X_new, "ks")
    assert ks.details["feature_p_values"].shape == (6,)
    assert ks.p_value == pytest.approx(min(1.0, 6 * ks.details["feature_p_values"].min()))
    assert ks.statistic == pytest.approx(ks.details["feature_statistics"].max())
    mmd = detect_shift(X_ref, X_new, "mmd", n_permutations=49, random_state=0)
    assert 1 / 50 <= mmd.p_value <= 1.0
    assert mmd.details["n_ref"] == 50 and mmd.details["n_new"] == 60
    classifier = detect_shift(X_ref, X_new, "classifier", random_state=0)
    assert classifier.statistic == classifier.details["auc"]
    assert "p=" in str(classifier)


def test_clear_errors():
    with pytest.raises(ValueError, match="same backbone"):
        detect_shift(np.zeros((10, 3)), np.zeros((10, 2)))
    with pytest.raises(InvalidParameterError, match="method"):
        detect_shift(np.zeros((10, 3)), np.zeros((10, 3)), method="wasserstein")
    with pytest.raises(ValueError, match="X_new"):
        detect_shift(np.zeros((10, 3)), np.zeros((1, 3)))

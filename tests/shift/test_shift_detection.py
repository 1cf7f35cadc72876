"""detect_shift: false-positive rate near alpha without shift, power with it,
and "cannot tell" below the smallest sample each test can decide on."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import ShiftTestResult, detect_shift
from sktransfer.shift._detection import _mmd_test

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
            rng.normal(size=(40, 4)),
            rng.normal(size=(40, 4)),
            method,
            ALPHA,
            random_state=i,
            **kwargs,
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
    assert result.is_shift and result.decision == "shift"
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
    assert ks.decision == ("shift" if ks.p_value < ALPHA else "no shift detected")
    mmd = detect_shift(X_ref, X_new, "mmd", n_permutations=49, random_state=0)
    # A Monte-Carlo permutation p-value is (1 + exceedances) / (1 + permutations).
    exceedances = mmd.p_value * 50 - 1
    assert exceedances == pytest.approx(round(exceedances)) and 0 <= round(exceedances) <= 49
    assert mmd.details["n_ref"] == 50 and mmd.details["n_new"] == 60
    assert mmd.smallest_p_value == pytest.approx(1 / 50)
    classifier = detect_shift(X_ref, X_new, "classifier", random_state=0)
    assert classifier.statistic == classifier.details["auc"]
    assert classifier.details["n_test"] == 55  # half of 110 rows, rounded up
    assert f"p={classifier.p_value:.3g}" in str(classifier)


def test_mmd_statistic_is_the_biased_mmd2_computed_directly():
    rng = np.random.default_rng(4)
    X_ref, X_new = rng.normal(size=(5, 2)), rng.normal(size=(7, 2)) + 1.0
    statistic, _, details = _mmd_test(X_ref, X_new, 10, np.random.RandomState(0))
    gamma = details["bandwidth_gamma"]

    def kernel_mean(A, B):
        return np.mean(np.exp(-gamma * ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)))

    expected = kernel_mean(X_ref, X_ref) + kernel_mean(X_new, X_new) - 2 * kernel_mean(X_ref, X_new)
    assert statistic == pytest.approx(expected, rel=1e-10)


def _exact_mmd_p_value(X_ref, X_new, gamma):
    """Share of all splits of the pooled rows whose biased MMD² reaches the observed one."""
    pooled = np.vstack([X_ref, X_new])
    kernel = np.exp(-gamma * ((pooled[:, None] - pooled[None]) ** 2).sum(-1))

    def mmd2(ref_rows):
        signs = np.full(len(pooled), -1.0 / (len(pooled) - len(X_ref)))
        signs[list(ref_rows)] = 1.0 / len(X_ref)
        return signs @ kernel @ signs

    observed = mmd2(range(len(X_ref)))
    splits = list(itertools.combinations(range(len(pooled)), len(X_ref)))
    return np.mean([mmd2(rows) >= observed - 1e-12 for rows in splits])


@pytest.mark.parametrize("n_ref, n_new", [(3, 3), (3, 4), (4, 4), (2, 5)])
def test_mmd_floor_matches_exhaustive_enumeration(n_ref, n_new):
    # Far-apart samples reach the most extreme split; enumerating every split
    # gives the exact permutation p-value, which is the floor the test reports.
    rng = np.random.default_rng(5)
    X_ref, X_new = rng.normal(size=(n_ref, 1)), rng.normal(size=(n_new, 1)) + 20.0
    result = detect_shift(X_ref, X_new, "mmd", n_permutations=2000, random_state=0)
    exact = _exact_mmd_p_value(X_ref, X_new, result.details["bandwidth_gamma"])
    assert result.smallest_p_value == pytest.approx(exact)
    # The Monte-Carlo p-value estimates the exact one (binomial noise over 2000 draws).
    assert abs(result.p_value - exact) < 4 * np.sqrt(exact * (1 - exact) / 2000) + 1 / 2001
    if exact >= ALPHA:
        assert result.decision == "cannot tell"


@pytest.mark.parametrize(
    "method, n, decides",
    [
        ("mmd", 3, False),
        ("mmd", 4, True),
        ("ks", 3, False),
        ("ks", 4, True),
        ("classifier", 6, False),
        ("classifier", 7, True),
    ],
)
def test_smallest_sample_each_test_decides_on(method, n, decides):
    # Two samples 20 sd apart: any test that can decide at this size does.
    rng = np.random.default_rng(6)
    result = detect_shift(rng.normal(size=(n, 1)), rng.normal(size=(n, 1)) + 20.0, method, random_state=0)
    assert result.decision == ("shift" if decides else "cannot tell")
    assert result.is_shift == decides
    assert (result.smallest_p_value < ALPHA) == decides


def test_ks_floor_is_bonferroni_times_fully_separated_p_value():
    rng = np.random.default_rng(7)
    X_ref, X_new = rng.normal(size=(9, 1280)), rng.normal(size=(9, 1280))
    result = detect_shift(X_ref, X_new, "ks")
    separated = ks_2samp(np.arange(9), np.arange(9, 18)).pvalue
    assert separated == pytest.approx(2 / math.comb(18, 9))
    assert result.smallest_p_value == pytest.approx(min(1.0, 1280 * separated))
    # 1,280 features need 10 + 10 rows: 9 + 9 cannot tell even for a huge shift.
    shifted = detect_shift(X_ref, X_new + 20.0, "ks")
    assert shifted.decision == "cannot tell" and not shifted.is_shift
    assert detect_shift(np.r_[X_ref, X_ref[:1]], np.r_[X_new, X_new[:1]] + 20.0, "ks").is_shift


def test_too_few_permutations_cannot_tell():
    rng = np.random.default_rng(8)
    result = detect_shift(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 20.0, "mmd", n_permutations=10)
    assert result.smallest_p_value == pytest.approx(1 / 11)
    assert result.decision == "cannot tell"
    assert "cannot go below 0.0909" in str(result)


def test_clear_errors():
    with pytest.raises(ValueError, match="same backbone"):
        detect_shift(np.zeros((10, 3)), np.zeros((10, 2)))
    with pytest.raises(InvalidParameterError, match="method"):
        detect_shift(np.zeros((10, 3)), np.zeros((10, 3)), method="wasserstein")
    with pytest.raises(ValueError, match="X_new"):
        detect_shift(np.zeros((10, 3)), np.zeros((1, 3)))

"""LabelShiftAdapter: prior recovery (EM + BCTS, BBSE), corrected posteriors,
the smallest target it decides on, and the warning for targets outside the
source's support."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import LabelShiftAdapter
from sktransfer.shift._label_shift import MIN_TARGET_SAMPLES

CENTERS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
TARGET_PRIORS = np.array([0.7, 0.2, 0.1])


def blobs(y, rng):
    return CENTERS[y] + rng.normal(size=(len(y), 2))


@pytest.fixture(scope="module")
def shifted_data():
    rng = np.random.default_rng(0)
    y_source = np.repeat([0, 1, 2], 600)
    y_target = rng.choice(3, size=3000, p=TARGET_PRIORS)
    return blobs(y_source, rng), y_source, blobs(y_target, rng), y_target


@pytest.mark.parametrize(
    "method, calibration, tolerance",
    # Max absolute error against the target's empirical class frequencies; the
    # classes overlap (centres 2 sd apart), so ~0.03 is the typical error.
    [("em", "bcts", 0.05), ("em", "temperature", 0.05), ("bbse", "bcts", 0.07), ("bbse", None, 0.07)],
)
def test_known_priors_are_recovered(shifted_data, method, calibration, tolerance):
    X, y, X_target, y_target = shifted_data
    adapter = LabelShiftAdapter(method=method, calibration=calibration).fit(X, y)
    np.testing.assert_allclose(adapter.source_priors_, [1 / 3] * 3)
    adapter.fit_target(X_target)
    true_priors = np.bincount(y_target) / len(y_target)
    assert np.max(np.abs(adapter.target_priors_ - true_priors)) < tolerance
    assert adapter.target_priors_.sum() == pytest.approx(1.0)


def test_bcts_rescues_em_from_a_miscalibrated_model(shifted_data):
    X, y, X_target, y_target = shifted_data
    true_priors = np.bincount(y_target) / len(y_target)
    underconfident = LogisticRegression(C=1e-3)  # strong shrinkage: flat posteriors
    errors = {}
    for calibration in ("bcts", None):
        adapter = LabelShiftAdapter(underconfident, calibration=calibration).fit(X, y)
        errors[calibration] = np.max(np.abs(adapter.fit_target(X_target).target_priors_ - true_priors))
    # Uncalibrated EM stays ~0.2 away from the truth; BCTS gets within ~0.05.
    assert errors[None] > 0.15
    assert errors["bcts"] < 0.08


def test_correction_improves_accuracy_and_log_loss(shifted_data):
    X, y, X_target, y_target = shifted_data
    adapter = LabelShiftAdapter().fit(X, y)
    before_proba = adapter.predict_proba(X_target)
    before_accuracy = accuracy_score(y_target, adapter.predict(X_target))
    adapter.fit_target(X_target)
    after_accuracy = accuracy_score(y_target, adapter.predict(X_target))
    assert after_accuracy > before_accuracy + 0.03
    assert log_loss(y_target, adapter.predict_proba(X_target)) < log_loss(y_target, before_proba) - 0.05


def test_target_priors_follow_classes_order_with_string_labels():
    rng = np.random.default_rng(1)
    names = np.array(["zebra", "ant", "moth"])  # sorted: ant, moth, zebra
    y_index = np.repeat([0, 1, 2], 500)
    target_index = rng.choice(3, size=2000, p=TARGET_PRIORS)
    adapter = LabelShiftAdapter().fit(blobs(y_index, rng), names[y_index])
    adapter.fit_target(blobs(target_index, rng))
    assert adapter.classes_.tolist() == ["ant", "moth", "zebra"]
    by_name = dict(zip(adapter.classes_, adapter.target_priors_))
    assert by_name["zebra"] == pytest.approx(0.7, abs=0.05)
    assert by_name["ant"] == pytest.approx(0.2, abs=0.05)


def test_no_correction_before_fit_target_and_condition_number():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 200)
    X = blobs(y, rng)
    adapter = LabelShiftAdapter().fit(X, y)
    np.testing.assert_allclose(adapter.target_priors_, adapter.source_priors_)
    np.testing.assert_allclose(adapter.class_weights_, 1.0)
    assert adapter.confusion_matrix_.sum() == pytest.approx(1.0)
    X_overlapping = 0.2 * CENTERS[y] + rng.normal(size=(len(y), 2))  # classes nearly on top
    overlapping = LabelShiftAdapter().fit(X_overlapping, y)
    assert overlapping.confusion_condition_number_ > 2 * adapter.confusion_condition_number_


def test_fit_target_validates_features(shifted_data):
    X, y, _, _ = shifted_data
    adapter = LabelShiftAdapter().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        adapter.fit_target(np.zeros((5, 3)))


def test_works_as_pipeline_step(shifted_data):
    X, y, X_target, _ = shifted_data
    pipe = make_pipeline(StandardScaler(), LabelShiftAdapter()).fit(X, y)
    # fit_target is not a pipeline method: transform the target and call the step.
    pipe[-1].fit_target(pipe[:-1].transform(X_target))
    assert pipe[-1].target_priors_[0] == pytest.approx(0.7, abs=0.05)


def test_a_single_target_sample_is_refused_not_a_prior_of_one(shifted_data):
    # The old behaviour: fit_target(one row) returned priors like [1, 0, 0].
    X, y, X_target, _ = shifted_data
    adapter = LabelShiftAdapter().fit(X, y)
    with pytest.raises(ValueError, match=r"1 sample\(s\).*at least 25"):
        adapter.fit_target(X_target[:1])
    np.testing.assert_allclose(adapter.target_priors_, adapter.source_priors_)


def test_minimum_target_size_is_25(shifted_data):
    X, y, X_target, _ = shifted_data
    adapter = LabelShiftAdapter().fit(X, y)
    assert MIN_TARGET_SAMPLES == 25
    with pytest.raises(ValueError, match="at least 25"):
        adapter.fit_target(X_target[:24])
    priors = adapter.fit_target(X_target[:25]).target_priors_
    assert priors.sum() == pytest.approx(1.0) and priors.max() < 1.0


def test_genuine_label_shift_does_not_warn_and_reports_the_check(shifted_data):
    X, y, X_target, _ = shifted_data
    adapter = LabelShiftAdapter().fit(X, y)
    assert np.isnan(adapter.confidence_shortfall_z_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter.fit_target(X_target)
    confidence = adapter._calibrated_posteriors(adapter.estimator_.predict_proba(X_target)).max(axis=1)
    assert adapter.target_confidence_ == pytest.approx(confidence.mean())
    assert adapter.expected_target_confidence_ == pytest.approx(adapter.target_priors_ @ adapter.source_confidence_)
    assert abs(adapter.confidence_shortfall_z_) < 3


def held_out_class_domains(seed, n_target=200, held_out_share=0.8):
    """Source classes at x = -3 and x = +3; most target rows from a third class at (0, 3)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    y = np.repeat([0, 1], 300)
    rest = (1 - held_out_share) / 2
    y_target = rng.choice(3, size=n_target, p=[rest, rest, held_out_share])
    return centers[y] + rng.normal(size=(600, 2)), y, centers[y_target] + rng.normal(size=(n_target, 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_from_an_unseen_class_warns(seed):
    X, y, X_target = held_out_class_domains(seed)
    adapter = LabelShiftAdapter().fit(X, y)
    with pytest.warns(UserWarning, match="outside the source's support"):
        adapter.fit_target(X_target)
    # The unseen class sits on the source boundary: confidence below what any
    # re-weighting of the two source classes could give.
    assert adapter.confidence_shortfall_z_ > 3
    assert adapter.target_confidence_ < adapter.expected_target_confidence_


@pytest.mark.parametrize("seed", range(5))
def test_no_false_alarm_on_shifted_priors_of_seen_classes(seed):
    rng = np.random.default_rng(100 + seed)
    y = np.repeat([0, 1, 2], 200)
    y_target = rng.choice(3, size=300, p=TARGET_PRIORS)
    adapter = LabelShiftAdapter().fit(blobs(y, rng), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter.fit_target(blobs(y_target, rng))


def test_corrected_decisions_are_not_delegated_to_the_inner_decision_function(shifted_data):
    X, y, X_target, _ = shifted_data
    adapter = LabelShiftAdapter().fit(X, y).fit_target(X_target)
    # The inner model's decision_function ignores the target priors, so it is not offered.
    assert not hasattr(adapter, "decision_function")
    np.testing.assert_array_equal(
        adapter.predict(X_target), adapter.classes_[adapter.predict_proba(X_target).argmax(axis=1)]
    )


@pytest.mark.real_data
@pytest.mark.real_weights
def test_known_priors_recovered_on_real_flower_embeddings(flower_embeddings):
    X, y = flower_embeddings
    rng = np.random.default_rng(0)
    classes = np.unique(y)
    train_rows, pool_rows = [], []
    for label in classes:
        rows = rng.permutation(np.flatnonzero(y == label))
        train_rows.extend(rows[: len(rows) // 2])
        pool_rows.append(rows[len(rows) // 2 :])
    # Target: 70% of the first class, the rest shared equally, as many rows
    # as the pool allows.
    priors = np.r_[0.7, np.full(len(classes) - 1, 0.3 / (len(classes) - 1))]
    n_target = int(min(len(p) / q for p, q in zip(pool_rows, priors)))
    target_rows = np.concatenate([rows[: int(round(q * n_target))] for rows, q in zip(pool_rows, priors)])
    adapter = LabelShiftAdapter(LogisticRegression(C=0.1, max_iter=2000))
    adapter.fit(X[train_rows], y[train_rows]).fit_target(X[target_rows])
    true_priors = np.array([np.mean(y[target_rows] == c) for c in classes])
    # Embeddings separate flowers well: EM-BCTS lands within 0.05 of each prior.
    assert np.max(np.abs(adapter.target_priors_ - true_priors)) < 0.05


def test_em_priors_are_a_fixed_point_of_the_saerens_update(shifted_data):
    # At convergence the priors equal the mean of the posteriors they correct:
    # pi = mean_x normalise(p_s(y|x) * pi / pi_s).
    X, y, X_target, _ = shifted_data
    adapter = LabelShiftAdapter().fit(X, y).fit_target(X_target)
    np.testing.assert_allclose(adapter.predict_proba(X_target).mean(axis=0), adapter.target_priors_, atol=1e-6)
    assert 1 < adapter.n_em_iter_ < adapter.em_max_iter


def test_bbse_solves_confusion_times_weights_equals_predicted_distribution(shifted_data):
    X, y, X_target, _ = shifted_data
    adapter = LabelShiftAdapter(method="bbse").fit(X, y).fit_target(X_target)
    source_proba = adapter._calibrated_posteriors(adapter.estimator_.predict_proba(X_target))
    predicted = np.bincount(source_proba.argmax(axis=1), minlength=3) / len(X_target)
    # No weight was clipped at 0 here, so the estimate solves C w = mu exactly.
    np.testing.assert_allclose(adapter.confusion_matrix_ @ adapter.class_weights_, predicted, atol=1e-10)

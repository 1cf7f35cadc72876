"""FewShotLinearClassifier: prototypes at one shot, prototypes or logistic regression by internal CV above."""

import pickle

import numpy as np
import pytest
from _catalogue import Raises, assert_catalogue, check_row
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sktransfer.feature_extraction import FewShotLinearClassifier


def _unit_rows(X, mean):
    Z = X - mean
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def _signed_sqrt(X):
    """The default power normalisation, written independently of the library."""
    return np.copysign(np.sqrt(np.abs(X)), X)


def _blobs(n_per_class, n_classes=3, n_features=12, spread=0.6, seed=0):
    rng = np.random.default_rng(seed)
    centres = 2 * rng.normal(size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + spread * rng.normal(size=(len(y), n_features)), y


def test_one_shot_is_the_nearest_unit_class_mean():
    X, y = _blobs(1)
    X_new, _ = _blobs(5, seed=1)
    clf = FewShotLinearClassifier(strategy="auto").fit(X, y)
    R, R_new = _signed_sqrt(X), _signed_sqrt(X_new)
    assert clf.strategy_ == "prototype" and clf.C_ is None and clf.n_shots_ == 1 and clf.cv_scores_ == {}
    prototypes = _unit_rows(R, R.mean(axis=0))  # one image per class: its own prototype
    cosine = _unit_rows(R_new, R.mean(axis=0)) @ prototypes.T
    np.testing.assert_array_equal(clf.predict(X_new), cosine.argmax(axis=1))
    np.testing.assert_allclose(clf.decision_function(X_new), 10.0 * cosine)


@pytest.mark.parametrize("n_per_class", [1, 2, 6])
def test_the_default_is_logistic_regression_at_C_30_on_centred_unit_square_roots_at_any_number_of_shots(n_per_class):
    X, y = _blobs(n_per_class)
    clf = FewShotLinearClassifier().fit(X, y)
    R = _signed_sqrt(X)
    reference = LogisticRegression(C=30.0, max_iter=1000).fit(_unit_rows(R, R.mean(axis=0)), y)
    assert clf.strategy_ == "logistic" and clf.C_ == 30.0 and clf.cv_scores_ == {}
    np.testing.assert_allclose(clf.coef_, reference.coef_, rtol=1e-5, atol=1e-7)


def test_logistic_with_one_C_is_logistic_regression_on_centred_unit_rows():
    X, y = _blobs(6)
    clf = FewShotLinearClassifier(strategy="logistic", Cs=2.0, power=1.0).fit(X, y)
    reference = LogisticRegression(C=2.0, max_iter=1000).fit(_unit_rows(X, X.mean(axis=0)), y)
    assert clf.strategy_ == "logistic" and clf.C_ == 2.0 and clf.cv_scores_ == {}
    np.testing.assert_allclose(clf.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(_unit_rows(X, X.mean(axis=0))), atol=1e-8)


def test_cv_scores_are_those_of_stratified_folds_and_the_best_is_refitted():
    X, y = _blobs(6, spread=2.5)  # overlapping classes: the candidates score differently
    clf = FewShotLinearClassifier(strategy="auto", Cs=[0.5, 50.0], cv=3).fit(X, y)
    X = _signed_sqrt(X)  # element-wise, so the same in every fold
    for C in (0.5, 50.0):
        accuracies = []
        for train, test in StratifiedKFold(3).split(X, y):
            mean = X[train].mean(axis=0)
            model = LogisticRegression(C=C, max_iter=1000).fit(_unit_rows(X[train], mean), y[train])
            accuracies.append(np.mean(model.predict(_unit_rows(X[test], mean)) == y[test]))
        assert clf.cv_scores_[C] == pytest.approx(np.mean(accuracies), abs=1e-9)
    best = max(clf.cv_scores_.values())
    first_best = next(c for c in ["prototype", 0.5, 50.0] if clf.cv_scores_[c] == best)
    assert clf.C_ == (None if first_best == "prototype" else first_best)


def test_the_views_of_an_image_are_one_shot_and_stay_in_one_fold():
    # Random labels: nothing to learn. Four noisy copies ("views") of each
    # image: if copies of a held-out image were trained on, an unregularised
    # model would score them almost perfectly.
    rng = np.random.default_rng(0)
    images = rng.normal(size=(30, 40))
    y_images = np.repeat([0, 1], 15)
    order = rng.permutation(120)  # views interleaved, as any row order may have them
    groups = np.repeat(np.arange(30), 4)[order]
    X = images[groups] + 0.01 * rng.normal(size=(120, 40))
    y = y_images[groups]
    leaky = FewShotLinearClassifier(strategy="logistic", Cs=[1000.0, 2000.0]).fit(X, y)
    grouped = FewShotLinearClassifier(strategy="logistic", Cs=[1000.0, 2000.0]).fit(X, y, groups=groups)
    assert leaky.n_shots_ == 60 and grouped.n_shots_ == 15
    assert leaky.cv_scores_[1000.0] > 0.95
    assert grouped.cv_scores_[1000.0] < 0.8
    # One image of a class, however many views: prototypes.
    auto = FewShotLinearClassifier(strategy="auto")
    assert auto.fit(X[:8], [0, 0, 0, 0, 1, 1, 1, 1], groups=[0] * 4 + [1] * 4).strategy_ == "prototype"


def test_cross_validation_fits_one_mean_row_per_group():
    X, y = _blobs(6, spread=2.5)
    views = np.repeat(X, 3, axis=0)  # three identical views: their mean is the image
    grouped = FewShotLinearClassifier(Cs=[0.5, 50.0]).fit(views, np.repeat(y, 3), groups=np.repeat(np.arange(18), 3))
    weighted = FewShotLinearClassifier(Cs=[0.5, 50.0]).fit(X, y, sample_weight=np.full(18, 3.0))
    assert grouped.cv_scores_ == pytest.approx(weighted.cv_scores_, abs=1e-9)
    np.testing.assert_allclose(grouped.decision_function(X), weighted.decision_function(X), rtol=1e-4, atol=1e-6)


def test_sample_weight_two_is_the_row_twice_for_the_prototypes():
    X, y = _blobs(3)
    weights = np.array([2, 1, 1, 1, 1, 2, 1, 1, 1])
    weighted = FewShotLinearClassifier(strategy="prototype").fit(X, y, sample_weight=weights)
    repeated = FewShotLinearClassifier(strategy="prototype").fit(np.repeat(X, weights, axis=0), np.repeat(y, weights))
    np.testing.assert_allclose(weighted.mean_, repeated.mean_)
    np.testing.assert_allclose(weighted.decision_function(X), repeated.decision_function(X))
    plain = FewShotLinearClassifier(strategy="prototype").fit(X, y)
    assert not np.allclose(plain.decision_function(X), weighted.decision_function(X))


def test_binary_decision_and_probabilities_agree():
    X, y = _blobs(4, n_classes=2)
    labels = np.array(["ant", "bee"])[y]
    for strategy in ("prototype", "logistic", "auto"):
        clf = FewShotLinearClassifier(strategy=strategy).fit(X, labels)
        scores, proba = clf.decision_function(X), clf.predict_proba(X)
        assert scores.shape == (8,) and proba.shape == (8, 2)
        np.testing.assert_array_equal(clf.predict(X), np.where(scores > 0, "bee", "ant"))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(proba.argmax(axis=1), (scores > 0).astype(int))
        assert clf.score(X, labels) == 1.0


def test_in_a_pipeline_clone_and_pickle():
    X, y = _blobs(5)
    pipe = make_pipeline(FunctionTransformer(np.tanh), FewShotLinearClassifier()).fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict_proba(X), pipe.predict_proba(X))
    fresh = clone(pipe)
    assert not hasattr(fresh[-1], "coef_")
    assert pipe.score(X, y) == 1.0


@pytest.mark.parametrize("power", [0.3, 0.5, 2.0])
def test_power_is_applied_to_every_component_with_its_sign_before_centring(power):
    X, y = _blobs(4)
    X_new, _ = _blobs(3, seed=1)
    powered = FewShotLinearClassifier(power=power).fit(X, y)
    by_hand = FewShotLinearClassifier(power=1.0).fit(np.sign(X) * np.abs(X) ** power, y)
    np.testing.assert_allclose(powered.mean_, by_hand.mean_)
    np.testing.assert_allclose(powered.coef_, by_hand.coef_)
    np.testing.assert_allclose(
        powered.decision_function(X_new), by_hand.decision_function(np.sign(X_new) * np.abs(X_new) ** power)
    )
    # An odd function: negating every embedding negates the normalised ones, the fitted model mirrors.
    mirrored = FewShotLinearClassifier(power=power).fit(-X, y)
    np.testing.assert_allclose(mirrored.decision_function(-X_new), powered.decision_function(X_new), atol=1e-6)


def test_power_changes_the_model_and_one_turns_it_off():
    rng = np.random.default_rng(0)
    X, y = np.abs(_blobs(4)[0]) ** 3, np.repeat([0, 1, 2], 4)  # heavy-tailed, non-negative, as pooled activations
    plain = FewShotLinearClassifier(power=1.0).fit(X, y)
    reference = LogisticRegression(C=30.0, max_iter=1000).fit(_unit_rows(X, X.mean(axis=0)), y)
    np.testing.assert_allclose(plain.coef_, reference.coef_, rtol=1e-5, atol=1e-7)
    rooted = FewShotLinearClassifier().fit(X, y)
    np.testing.assert_allclose(rooted.mean_, np.sqrt(X).mean(axis=0))
    assert not np.allclose(rooted.coef_, plain.coef_)
    X_new = X + 0.1 * rng.normal(size=X.shape)
    assert not np.allclose(rooted.decision_function(X_new), plain.decision_function(X_new))


def _fit(X, y, **params):
    fit_params = {k: params.pop(k) for k in list(params) if k in ("sample_weight", "groups")}

    def fault(ctx):
        return FewShotLinearClassifier(**params).fit(X, y, **fit_params)

    return fault


_X, _y = _blobs(2)
BAD_INPUTS = [
    ("head-one-class", _fit(_X[:2], [0, 0]), Raises(ValueError, "one class only")),
    (
        "head-logistic-cv-on-one-shot",
        _fit(_X[::2], _y[::2], strategy="logistic", Cs=(1.0, 10.0)),
        Raises(ValueError, "at least 2 shots of every class"),
    ),
    ("head-groups-wrong-length", _fit(_X, _y, groups=[0, 1]), Raises(ValueError, "groups must have one entry per row")),
    (
        "head-group-of-two-labels",
        _fit(_X, _y, groups=[0, 1, 1, 2, 2, 0]),  # rows 0 and 5 are of different classes
        Raises(ValueError, "rows of group 0 have different labels"),
    ),
    (
        "head-group-of-two-labels-auto",
        _fit(_X, _y, groups=[0, 1, 1, 2, 2, 0], strategy="auto", Cs=(1.0, 10.0)),
        Raises(ValueError, "rows of group 0 have different labels"),
    ),
    ("head-Cs-empty", _fit(_X, _y, Cs=[]), Raises(ValueError, "Cs must be one positive number")),
    ("head-Cs-negative", _fit(_X, _y, Cs=[1.0, -1.0]), Raises(ValueError, "Cs must be one positive number")),
    ("head-weights-all-zero", _fit(_X, _y, sample_weight=np.zeros(6)), Raises(ValueError, "at least one non-zero")),
    ("head-cv-one", _fit(_X, _y, cv=1), Raises(ValueError, "'cv' parameter")),
    ("head-nan-embedding", _fit(np.where(np.eye(6, 12) > 0, np.nan, _X), _y), Raises(ValueError, "NaN")),
    ("head-power-zero", _fit(_X, _y, power=0.0), Raises(ValueError, "'power' parameter")),
]


def test_bad_inputs_catalogue_size():
    assert_catalogue(BAD_INPUTS, 11)


@pytest.mark.parametrize("fault, expected", [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS])
def test_bad_inputs(fault, expected):
    check_row(fault, expected, None)

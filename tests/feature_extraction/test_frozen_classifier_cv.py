"""FrozenFeatureClassifier(cv=...): cross-validation over images on embeddings computed once."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import FrozenFeatureClassifier, PretrainedFeatureExtractor


class RowsHead(LogisticRegression):
    """LogisticRegression that records every fit's rows (in a class-level list)."""

    fits = []

    def fit(self, X, y, sample_weight=None):
        RowsHead.fits.append((np.asarray(X).copy(), np.asarray(y).copy()))
        return super().fit(X, y, sample_weight=sample_weight)


def _tiny():
    return PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch", batch_size=4)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    y = np.arange(12) % 3
    # Each class a different tint: something to learn, not perfectly.
    images = [(rng.integers(0, 150, (30, 34, 3)) + 40 * np.eye(3)[label] * 2).astype(np.uint8) for label in y]
    return images, np.array(["a", "b", "c"])[y]


def test_cv_scores_are_those_of_fitting_each_split_by_hand(data):
    images, y = data
    folds = list(StratifiedKFold(2, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    RowsHead.fits.clear()
    clf = FrozenFeatureClassifier(
        extractor=_tiny(), classifier=RowsHead(max_iter=500), n_views=2, random_state=0, cv=folds
    ).fit(images, y)
    assert len(RowsHead.fits) == 3  # one per split, then the final fit on every row
    all_rows, all_labels = RowsHead.fits[-1]
    centre = clf.extractor_.transform(images)
    np.testing.assert_allclose(all_rows[: len(y)], centre, rtol=1e-5, atol=1e-6)
    row_image = np.concatenate([np.arange(12), np.repeat(np.arange(12), 2)])
    hits, loss, predictions = 0, 0.0, np.empty_like(y)
    for (train, test), (rows, labels) in zip(folds, RowsHead.fits[:2]):
        # A split trains on its images' rows and their views', and nothing of the held-out images.
        keep = np.isin(row_image, train)
        np.testing.assert_array_equal(rows, all_rows[keep])
        np.testing.assert_array_equal(labels, all_labels[keep])
        head = LogisticRegression(max_iter=500).fit(rows, labels)
        predictions[test] = head.predict(centre[test])
        hits += np.sum(predictions[test] == y[test])
        proba = head.predict_proba(centre[test]).astype(float)
        loss += log_loss(y[test], proba / proba.sum(axis=1, keepdims=True), labels=head.classes_, normalize=False)
    assert clf.cv_scores_["n_splits"] == 2
    assert clf.cv_scores_["accuracy"] == pytest.approx(hits / 12)
    assert clf.cv_scores_["log_loss"] == pytest.approx(loss / 12, rel=1e-4)
    np.testing.assert_array_equal(clf.cv_predictions_, predictions)  # each image, by the split holding it out
    # The fitted model is the fit on everything, as without cv.
    plain = FrozenFeatureClassifier(extractor=_tiny(), classifier=RowsHead(max_iter=500), n_views=2, random_state=0)
    np.testing.assert_allclose(plain.fit(images, y).classifier_.coef_, clf.classifier_.coef_, rtol=1e-6)
    assert plain.cv_scores_ is None and plain.cv_predictions_ is None


def test_cv_predictions_need_every_image_held_out_once(data):
    images, y = data
    repeated = FrozenFeatureClassifier(
        extractor=_tiny(), random_state=0, cv=ShuffleSplit(3, test_size=4, random_state=0)
    )
    assert repeated.fit(images, y).cv_scores_["n_splits"] == 3 and repeated.cv_predictions_ is None
    folds = FrozenFeatureClassifier(extractor=_tiny(), random_state=0, cv=3).fit(images, y)
    assert folds.cv_predictions_.shape == (12,) and set(folds.cv_predictions_) <= set(y)
    assert np.mean(folds.cv_predictions_ == y) == pytest.approx(folds.cv_scores_["accuracy"])


def test_cv_as_an_int_is_stratified_folds_of_images(data):
    images, y = data
    clf = FrozenFeatureClassifier(extractor=_tiny(), n_views=1, random_state=0, cv=3).fit(images, y)
    assert clf.cv_scores_["n_splits"] == 3
    assert 0.0 <= clf.cv_scores_["accuracy"] <= 1.0 and np.isfinite(clf.cv_scores_["log_loss"])


def test_a_split_missing_a_class_still_scores_every_held_out_image(data):
    images, y = data
    order = np.argsort(y, kind="stable")  # unshuffled KFold on sorted labels: each split lacks a class
    clf = FrozenFeatureClassifier(extractor=_tiny(), n_views=1, random_state=0, cv=KFold(3))
    clf.fit([images[i] for i in order], y[order])
    # Every held-out image is of the class its split never saw: all wrong, at a finite (clipped) loss.
    assert clf.cv_scores_["accuracy"] == 0.0
    assert np.isfinite(clf.cv_scores_["log_loss"])


def test_cv_with_a_classifier_without_probabilities_has_no_log_loss(data):
    images, y = data
    clf = FrozenFeatureClassifier(extractor=_tiny(), classifier=LinearSVC(), n_views=1, random_state=0, cv=2)
    scores = clf.fit(images, y).cv_scores_
    assert np.isnan(scores["log_loss"]) and 0.0 <= scores["accuracy"] <= 1.0


def test_cv_needs_the_centre_crops(data):
    images, y = data
    with pytest.raises(ValueError, match="keep_original=False"):
        FrozenFeatureClassifier(extractor=_tiny(), n_views=1, keep_original=False, cv=2).fit(images, y)


def test_a_bad_cv_is_refused_naming_the_parameter(data):
    images, y = data
    with pytest.raises(InvalidParameterError, match="'cv' parameter"):
        FrozenFeatureClassifier(extractor=_tiny(), n_views=1, cv="five").fit(images, y)

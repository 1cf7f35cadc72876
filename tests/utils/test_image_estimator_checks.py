"""The image estimator checks pass on a correct estimator and catch each kind of breakage.

The estimators here are tiny and network-free (mean colour of each image),
so every check runs in milliseconds; the real estimators run the suite in
tests/test_common.py.
"""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sktransfer.image import load_image
from sktransfer.image._validation import ImageInputMixin
from sktransfer.utils import estimator_checks as ec


def _mean_colours(items):
    return np.array([np.asarray(load_image(item), dtype=np.float64).mean(axis=(0, 1)) / 255 for item in items])


class MeanColour(ImageInputMixin, TransformerMixin, BaseEstimator):
    """Each image -> its mean R, G, B: a correct image transformer."""

    def __init__(self, image_shape="auto", scale=1.0):
        self.image_shape = image_shape
        self.scale = scale

    def fit(self, X, y=None):
        self._validate_images(X, reset=True)
        self.n_features_out_ = 3
        return self

    def transform(self, X):
        check_is_fitted(self)
        return self.scale * _mean_colours(self._validate_images(X, reset=False))

    def get_feature_names_out(self, input_features=None):
        return np.array(["red", "green", "blue"], dtype=object)


class NearestMeanColour(ImageInputMixin, ClassifierMixin, BaseEstimator):
    """Nearest class centroid of mean colours: a correct image classifier."""

    def __init__(self, image_shape="auto"):
        self.image_shape = image_shape

    def fit(self, X, y):
        colours = _mean_colours(self._validate_images(X, reset=True))
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.centroids_ = np.stack([colours[codes == k].mean(0) for k in range(len(self.classes_))])
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        colours = _mean_colours(self._validate_images(X, reset=False))
        logits = -((colours[:, None] - self.centroids_[None]) ** 2).sum(-1) * 50
        weights = np.exp(logits - logits.max(1, keepdims=True))
        return weights / weights.sum(1, keepdims=True)

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(1)]


# ------------------------------------------------------------ broken ones


class OrderDependent(MeanColour):
    def transform(self, X):
        out = super().transform(X)
        return out + np.arange(len(out))[:, None] * 1e-2


class PathsDiffer(MeanColour):
    def transform(self, X):
        out = super().transform(X)
        return out + 1.0 if isinstance(X, list) and isinstance(X[0], str) else out


class NoNotFittedError(MeanColour):
    def transform(self, X):
        return _mean_colours(self._validate_images(X, reset=False))


class AttributeErrorBeforeFit(MeanColour):
    def transform(self, X):
        return _mean_colours(self._validate_images(X, reset=False))[:, : self.n_features_out_]


class FitOnPathsDiffers(MeanColour):
    def fit(self, X, y=None):
        self.offset_ = 1.0 if isinstance(X[0], str) else 0.0
        return super().fit(X, y)

    def transform(self, X):
        return super().transform(X) + self.offset_


class WrongWidth(MeanColour):
    def fit(self, X, y=None):
        super().fit(X, y)
        self.n_features_out_ = 4
        return self


class RandomEachFit(MeanColour):
    def fit(self, X, y=None):
        super().fit(X, y)
        self.offset_ = np.random.default_rng().random()
        return self

    def transform(self, X):
        return super().transform(X) + self.offset_


class MutatesInput(MeanColour):
    def fit(self, X, y=None):
        if isinstance(X, np.ndarray):
            X[..., 0] = 0
        return super().fit(X, y)


class DropsIndex(MeanColour):
    def transform(self, X):
        return super().transform(list(X) if hasattr(X, "index") else X)


class EncodesLabels(NearestMeanColour):
    def fit(self, X, y):
        super().fit(X, y)
        self.classes_ = np.arange(len(self.classes_))
        return self


class StripsTables(MeanColour):
    """The old contract: any table width read as one-pixel-high strips."""

    def fit(self, X, y=None):
        if np.ndim(X) == 2 and np.shape(X)[1] == 10:
            self.n_features_out_ = 3
            return self
        return super().fit(X, y)


@pytest.mark.parametrize("estimator", [MeanColour(), NearestMeanColour()], ids=["transformer", "classifier"])
def test_correct_estimators_pass_every_check(estimator):
    ec.check_image_estimator(estimator)


@pytest.mark.parametrize(
    "estimator, failing_check, fragment",
    [
        (OrderDependent(), ec.check_image_sample_order_invariance, "order of the images"),
        (OrderDependent(), ec.check_image_subset_invariance, "differ when passed alone"),
        (PathsDiffer(), ec.check_image_containers, "list of paths"),
        (FitOnPathsDiffers(), ec.check_image_fit_containers, "fit on paths and fit on arrays disagree"),
        (NoNotFittedError(), ec.check_image_not_fitted, "transform before fit did not raise"),
        (AttributeErrorBeforeFit(), ec.check_image_not_fitted, "raised AttributeError"),
        (WrongWidth(), ec.check_image_fitted_attributes, "n_features_out_ is 4"),
        (RandomEachFit(), ec.check_image_clone_and_pickle, "clone fitted the same way"),
        (MutatesInput(), ec.check_image_inputs_unchanged, "input batch was modified"),
        (DropsIndex(), ec.check_image_set_output_pandas, "index was not kept"),
        (EncodesLabels(), ec.check_image_string_labels, None),
        (StripsTables(), ec.check_image_table_contract, "image_shape"),
    ],
    ids=lambda value: (
        getattr(value, "__name__", None) or (type(value).__name__ if not isinstance(value, str) else None)
    ),
)
def test_each_check_catches_its_breakage(estimator, failing_check, fragment):
    with pytest.raises(AssertionError) as info:
        failing_check(estimator)
    if fragment is not None:
        assert fragment in str(info.value)


def test_check_image_estimator_names_the_failing_check():
    with pytest.raises(AssertionError, match="check_image_sample_order_invariance failed for OrderDependent"):
        ec.check_image_estimator(OrderDependent())


def test_generator_yields_checks_by_estimator_kind():
    transformer = [check.__name__ for check in ec.image_estimator_checks(MeanColour())]
    classifier = [check.__name__ for check in ec.image_estimator_checks(NearestMeanColour())]
    assert set(transformer) - set(classifier) == {"check_image_set_output_pandas"}
    assert set(classifier) - set(transformer) == {"check_image_string_labels"}
    assert len(transformer) == len(set(transformer)) == 10


def test_make_image_data_is_seeded_and_separable():
    images, y = ec.make_image_data(6, side=5, seed=3)
    again, _ = ec.make_image_data(6, side=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))
    means = np.array([image.mean() for image in images])
    # Class 1 is brighter by 120 grey levels, noise spans 128: no overlap of the means.
    assert means[y == 1].min() > means[y == 0].max()
    assert y.tolist() == [0, 1, 0, 1, 0, 1]


def test_checks_write_only_to_a_removed_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(ec.tempfile, "tempdir", str(tmp_path))
    ec.check_image_containers(MeanColour())
    assert list(tmp_path.iterdir()) == []

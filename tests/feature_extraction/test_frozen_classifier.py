"""FrozenFeatureClassifier: a classifier fitted on embeddings of images and of random views of them."""

import pickle
import random

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sktransfer import FewShotLinearClassifier, FrozenFeatureClassifier, PretrainedFeatureExtractor
from sktransfer.feature_extraction import _frozen_classifier
from sktransfer.feature_extraction._frozen_classifier import _source_side
from sktransfer.image._transforms import random_resized_crop_flip


def _tiny(**params):
    return PretrainedFeatureExtractor(
        model="tiny_convnet", weights=None, num_workers=0, engine="torch", batch_size=4, **params
    )


class RecordingLR(LogisticRegression):
    """LogisticRegression that keeps what fit was given."""

    def fit(self, X, y, sample_weight=None):
        self.seen_X_, self.seen_y_, self.seen_weight_ = np.asarray(X), np.asarray(y), sample_weight
        return super().fit(X, y, sample_weight=sample_weight)


class CountingExtractor(PretrainedFeatureExtractor):
    """Records how many images each transform call got (in a class-level list)."""

    calls = []

    def transform(self, X):
        CountingExtractor.calls.append(len(X))
        return super().transform(X)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.arange(10) % 2
    # Class 1 is brighter: something to learn.
    images = [
        (rng.integers(0, 128, (32 + 4 * (i % 3), 36, 3)) + 110 * label).astype(np.uint8) for i, label in enumerate(y)
    ]
    return images, y


def test_no_views_is_the_pipeline_exactly(data):
    images, y = data
    clf = FrozenFeatureClassifier(extractor=_tiny(), n_views=0).fit(images, y)
    pipe = make_pipeline(_tiny(), FewShotLinearClassifier()).fit(images, y)
    np.testing.assert_array_equal(clf.predict(images), pipe.predict(images))
    np.testing.assert_array_equal(clf.predict_proba(images), pipe.predict_proba(images))
    np.testing.assert_array_equal(clf.decision_function(images), pipe.decision_function(images))
    assert clf.score(images, y) == pipe.score(images, y)


@pytest.mark.parametrize("n_views, keep_original", [(3, True), (3, False), (1, True)])
def test_classifier_sees_every_view_with_its_label(data, n_views, keep_original):
    images, y = data
    clf = FrozenFeatureClassifier(
        extractor=_tiny(),
        classifier=RecordingLR(max_iter=1000),
        n_views=n_views,
        keep_original=keep_original,
        random_state=0,
    ).fit(images, y)
    seen_X, seen_y = clf.classifier_.seen_X_, clf.classifier_.seen_y_
    assert seen_X.shape == ((n_views + keep_original) * len(images), clf.extractor_.n_features_out_)
    expected_y = np.concatenate([y] * keep_original + [np.repeat(y, n_views)])
    np.testing.assert_array_equal(seen_y, expected_y)
    originals = clf.extractor_.transform(images)
    if keep_original:
        np.testing.assert_array_equal(seen_X[: len(images)], originals)
    # Views are other crops: no view embedding equals its image's centre crop.
    views = seen_X[len(images) * keep_original :]
    assert not np.isclose(views, np.repeat(originals, n_views, axis=0), atol=1e-6).all(axis=1).any()


def test_random_state_makes_fit_reproducible(data):
    images, y = data
    make = lambda seed: FrozenFeatureClassifier(extractor=_tiny(), n_views=2, random_state=seed)  # noqa: E731
    first, again, other = make(3).fit(images, y), make(3).fit(images, y), make(4).fit(images, y)
    np.testing.assert_array_equal(first.classifier_.coef_, again.classifier_.coef_)
    assert not np.allclose(first.classifier_.coef_, other.classifier_.coef_)
    # A RandomState given is the caller's generator: fits draw from it in turn.
    shared = np.random.RandomState(0)
    a, b = make(shared).fit(images, y), make(shared).fit(images, y)
    assert not np.allclose(a.classifier_.coef_, b.classifier_.coef_)


def _global_states():
    return np.random.get_state()[1].copy(), torch.get_rng_state().clone(), random.getstate()


def _torchvision_augment(image):
    from torchvision.transforms import v2

    return v2.RandomResizedCrop(20, scale=(0.3, 1.0))(image)


@pytest.mark.parametrize("augment", ["light", _torchvision_augment], ids=["light", "torchvision"])
@pytest.mark.parametrize("random_state", [None, 0])
def test_global_generators_are_left_alone(data, augment, random_state):
    images, y = data
    np.random.seed(123)
    torch.manual_seed(123)
    random.seed(123)
    before = _global_states()
    FrozenFeatureClassifier(extractor=_tiny(), n_views=2, augment=augment, random_state=random_state).fit(images, y)
    after = _global_states()
    np.testing.assert_array_equal(before[0], after[0])
    assert torch.equal(before[1], after[1])
    assert before[2] == after[2]


def test_callable_augment_drawing_from_torch_is_reproducible(data):
    images, y = data
    make = lambda: FrozenFeatureClassifier(  # noqa: E731
        extractor=_tiny(),
        classifier=RecordingLR(max_iter=1000),
        n_views=2,
        augment=_torchvision_augment,
        random_state=5,
    )
    first, again = make().fit(images, y), make().fit(images, y)
    np.testing.assert_array_equal(first.classifier_.seen_X_, again.classifier_.seen_X_)


def test_feature_union_of_extractors_concatenates(data):
    images, y = data
    union = FeatureUnion([("avg", _tiny(pooling="avg")), ("max", _tiny(pooling="max"))])
    clf = FrozenFeatureClassifier(
        extractor=union, classifier=RecordingLR(max_iter=1000), n_views=1, random_state=0
    ).fit(images, y)
    width = _tiny(pooling="avg").fit(images).n_features_out_
    assert clf.classifier_.seen_X_.shape == (2 * len(images), 2 * width)
    alone = FrozenFeatureClassifier(
        extractor=_tiny(pooling="max"), classifier=RecordingLR(max_iter=1000), n_views=1, random_state=0
    ).fit(images, y)
    # The same views reach both backbones: the union's max half is the max extractor's.
    np.testing.assert_allclose(clf.classifier_.seen_X_[:, width:], alone.classifier_.seen_X_, atol=1e-5)
    assert clf.predict_proba(images).shape == (len(images), 2)


def test_string_labels_are_kept(data):
    images, y = data
    labels = np.array(["cat", "dog"], dtype=object)[y]
    clf = FrozenFeatureClassifier(extractor=_tiny(), n_views=1, random_state=0).fit(images, labels)
    assert clf.classes_.tolist() == ["cat", "dog"]
    assert set(clf.predict(images)) <= {"cat", "dog"}


def test_series_of_paths_equals_arrays(data, tmp_path):
    images, y = data
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(image).save(paths[-1])
    series = pd.Series(paths, index=[f"p{i}" for i in range(len(paths))])
    make = lambda: FrozenFeatureClassifier(extractor=_tiny(), n_views=2, random_state=1)  # noqa: E731
    on_paths = make().fit(series, pd.Series(y, index=series.index))
    on_arrays = make().fit(images, y)
    np.testing.assert_allclose(on_paths.predict_proba(series), on_arrays.predict_proba(images), atol=1e-6)


def test_unfitted_prediction_raises_not_fitted(data):
    images, _ = data
    clf = FrozenFeatureClassifier(extractor=_tiny())
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(NotFittedError):
            method(images)


def test_methods_follow_the_classifier(data):
    images, y = data
    knn = FrozenFeatureClassifier(extractor=_tiny(), classifier=KNeighborsClassifier(1), n_views=0)
    assert not hasattr(knn, "decision_function") and hasattr(knn, "predict_proba")
    assert hasattr(FrozenFeatureClassifier(), "decision_function")
    # With one neighbour and the image itself among the training samples, training images come back.
    np.testing.assert_array_equal(knn.fit(images, y).predict(images), y)


class RecordingHead(FewShotLinearClassifier):
    """The default head, keeping the groups fit was given."""

    def fit(self, X, y, sample_weight=None, groups=None):
        self.seen_groups_ = groups
        return super().fit(X, y, sample_weight=sample_weight, groups=groups)


def test_default_extractor_is_the_three_lites_side_by_side():
    extractor = FrozenFeatureClassifier()._make_extractor()
    assert isinstance(extractor, FeatureUnion)
    assert [(name, part.model) for name, part in extractor.transformer_list] == [
        (model, model) for model in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    ]
    # Each part is the extractor's own default otherwise: ImageNet weights, no store.
    assert all(part.weights == "DEFAULT" and part.cache is None for _, part in extractor.transformer_list)
    # A new object per fit: fitting one classifier never touches another's extractor.
    assert FrozenFeatureClassifier()._make_extractor() is not extractor


@pytest.mark.parametrize("keep_original", [True, False])
def test_default_head_keeps_the_views_of_an_image_in_one_group(data, keep_original):
    images, y = data
    assert isinstance(FrozenFeatureClassifier()._make_classifier(), FewShotLinearClassifier)
    clf = FrozenFeatureClassifier(
        extractor=_tiny(), classifier=RecordingHead(), n_views=3, keep_original=keep_original, random_state=0
    ).fit(images, y)
    views = np.repeat(np.arange(10), 3)
    expected = np.concatenate([np.arange(10), views]) if keep_original else views
    np.testing.assert_array_equal(clf.classifier_.seen_groups_, expected)
    assert clf.classifier_.n_shots_ == 5  # five images per class, however many views


def test_sample_weight_is_repeated_per_view(data):
    images, y = data
    weights = np.linspace(0.5, 2.0, len(images))
    clf = FrozenFeatureClassifier(
        extractor=_tiny(), classifier=RecordingLR(max_iter=1000), n_views=2, random_state=0
    ).fit(images, y, sample_weight=weights)
    np.testing.assert_array_equal(clf.classifier_.seen_weight_, np.concatenate([weights, np.repeat(weights, 2)]))
    # Integer weights equal repeating the images (each image's views are drawn in order).
    lr = LogisticRegression(max_iter=1000)
    twice = FrozenFeatureClassifier(extractor=_tiny(), classifier=lr, n_views=0).fit(
        images, y, sample_weight=np.full(10, 2)
    )
    repeated = FrozenFeatureClassifier(extractor=_tiny(), classifier=lr, n_views=0).fit(images + images, np.tile(y, 2))
    np.testing.assert_allclose(twice.classifier_.coef_, repeated.classifier_.coef_, rtol=1e-4, atol=1e-5)


def test_views_are_embedded_in_bounded_chunks(data, monkeypatch):
    images, y = data
    make = lambda: FrozenFeatureClassifier(  # noqa: E731
        extractor=CountingExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch", batch_size=4),
        classifier=RecordingLR(max_iter=1000),
        n_views=3,
        keep_original=False,
        random_state=0,
    )
    whole = make().fit(images, y).classifier_.seen_X_
    monkeypatch.setattr(_frozen_classifier, "_VIEWS_PER_CHUNK", 7)
    CountingExtractor.calls.clear()
    chunked = make().fit(images, y).classifier_.seen_X_
    # 7 views per chunk -> 2 images (6 views) per call, 5 calls for 10 images.
    assert CountingExtractor.calls == [6, 6, 6, 6, 6]
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_large_images_are_reduced_before_cropping(monkeypatch):
    seen = []
    real = _frozen_classifier.random_resized_crop_flip
    monkeypatch.setattr(
        _frozen_classifier, "random_resized_crop_flip", lambda image, rng: seen.append(image.size) or real(image, rng)
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (200, 300, 3), dtype=np.uint8) for _ in range(2)]
    extractor = _tiny()
    FrozenFeatureClassifier(extractor=extractor, n_views=1, random_state=0).fit(images, [0, 1])
    side = 2 * extractor.fit(images).backbone_.preprocessing.resize_size
    assert side < 200 and seen == [(side * 3 // 2, side)] * 2


def test_source_side_reads_every_backbone(data):
    images, _ = data
    tiny = _tiny().fit(images)
    assert _source_side(tiny) == 2 * tiny.backbone_.preprocessing.resize_size
    union = FeatureUnion([("a", _tiny()), ("b", FunctionTransformer())]).fit(images)
    assert _source_side(union) == 2 * tiny.backbone_.preprocessing.resize_size
    assert _source_side(FunctionTransformer().fit(images)) is None


def test_image_shape_comes_from_the_extractor():
    assert FrozenFeatureClassifier(extractor=_tiny(image_shape=(4, 8))).image_shape == (4, 8)
    assert FrozenFeatureClassifier(extractor=FeatureUnion([("a", _tiny())])).image_shape == "auto"
    assert "image_shape" not in FrozenFeatureClassifier().get_params()


def test_pickle_keeps_predictions(data):
    images, y = data
    clf = FrozenFeatureClassifier(extractor=_tiny(), n_views=1, random_state=0).fit(images, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(images), clf.predict_proba(images))


# ------------------------------------------------------------ the views


def test_view_is_a_square_of_the_shorter_side():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    for seed in range(5):
        assert random_resized_crop_flip(img, np.random.default_rng(seed)).size == (30, 30)
    # A fixed output size draws the same crop, resized once to that size.
    same_crop = random_resized_crop_flip(img, np.random.default_rng(0), size=30)
    default = random_resized_crop_flip(img, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(same_crop), np.asarray(default))
    assert random_resized_crop_flip(img, np.random.default_rng(0), size=12).size == (12, 12)


def test_full_scale_view_is_the_resized_image_or_its_mirror():
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    whole = img.resize((30, 30), Image.Resampling.BILINEAR)
    mirrored = whole.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flips = set()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        view = np.asarray(random_resized_crop_flip(img, rng, scale=(1, 1), ratio=(4 / 3, 4 / 3)))
        if np.array_equal(view, np.asarray(whole)):
            flips.add(False)
        else:
            np.testing.assert_array_equal(view, np.asarray(mirrored))
            flips.add(True)
    assert flips == {False, True}


def test_impossible_ratio_falls_back_to_the_centre():
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, 20:40] = 255  # the central square is white, the sides black
    view = random_resized_crop_flip(
        Image.fromarray(pixels), np.random.default_rng(0), scale=(1, 1), ratio=(1, 1), flip=False
    )
    # No 1:1 crop covers the whole 3:1 image: the centre crop at the closest ratio (1:1) is white.
    assert np.asarray(view).min() == 255


def test_views_depend_on_the_generator_only():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    a = np.asarray(random_resized_crop_flip(img, np.random.default_rng(1)))
    b = np.asarray(random_resized_crop_flip(img, np.random.default_rng(1)))
    c = np.asarray(random_resized_crop_flip(img, np.random.default_rng(2)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_verbose_reports_each_fit_step_as_plain_lines(capsys):
    # 40 images x 8 views in chunks of 256 views (32 images): two chunks of views.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 24, 24, 3), dtype=np.uint8)
    y = np.repeat([0, 1], 20)
    clf = FrozenFeatureClassifier(extractor=_tiny(verbose=0), n_views=8, random_state=0, verbose=1).fit(images, y)
    err = capsys.readouterr().err
    assert [line.split(" in ")[0] for line in err.splitlines()] == [
        "FrozenFeatureClassifier [1/4] embedded 40 training images",
        "FrozenFeatureClassifier [2/4] embedded 256 views",
        "FrozenFeatureClassifier [3/4] embedded 64 views",
        "FrozenFeatureClassifier [4/4] fitted FewShotLinearClassifier",
        "FrozenFeatureClassifier: done",
    ]
    assert "\r" not in err and "\x1b" not in err
    clf.set_params(verbose=0).fit(images, y)
    assert capsys.readouterr().err == ""


@pytest.mark.real_weights
@pytest.mark.real_data
@pytest.mark.slow
def test_default_recipe_with_its_real_weights_tells_ants_from_bees(data_dir):
    # Every default but the number of views (1, for time): the three
    # pretrained Lites, side by side, with the default head.
    root = data_dir / "hymenoptera"
    train = [(p, c) for c in ("ants", "bees") for p in sorted((root / "train" / c).glob("*.jpg"))[:6]]
    val = [(p, c) for c in ("ants", "bees") for p in sorted((root / "val" / c).glob("*.jpg"))[:10]]
    clf = FrozenFeatureClassifier(n_views=1, random_state=0).fit([p for p, _ in train], [c for _, c in train])
    assert clf.classifier_.coef_.shape == (1, 3 * 1280)
    accuracy = np.mean(clf.predict([p for p, _ in val]) == np.array([c for _, c in val]))
    # Random features score about 0.5; the pretrained union gets all 20 right.
    assert accuracy >= 0.8

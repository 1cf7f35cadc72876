"""The diagnostic displays: what they pick, order and draw (Agg backend, tiny data)."""

import pickle

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.pipeline import make_pipeline

from sktransfer import PretrainedFeatureExtractor
from sktransfer.inspection import EmbeddingMapDisplay, MisclassifiedImagesDisplay, TrainingCurvesDisplay

TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, device="cpu")


def _images(n, size=20):
    # Image k is filled with the value k, so a thumbnail tells which input it came from.
    return np.stack([np.full((size, size, 3), k, dtype=np.uint8) for k in range(n)])


def test_misclassified_most_confident_mistake_first():
    y_true = np.array(["a", "b", "a", "b", "a", "b"])
    y_pred = np.array(["a", "a", "b", "b", "b", "a"])
    confidence = np.array([0.99, 0.55, 0.9, 0.8, 0.7, 0.95])
    display = MisclassifiedImagesDisplay.from_predictions(y_true, y_pred, _images(6), confidence=confidence)
    assert display.indices.tolist() == [5, 2, 4, 1]
    assert [int(image[0, 0, 0]) for image in display.images] == [5, 2, 4, 1]
    assert display.y_true.tolist() == ["b", "a", "a", "b"] and display.y_pred.tolist() == ["a", "b", "b", "a"]
    titles = [ax.get_title() for ax in display.image_axes_]
    assert titles[0] == "true: b\npred: a (0.95)"
    assert display.figure_ is display.ax_.figure


def test_misclassified_without_confidence_keeps_input_order_and_caps_count():
    y_true, y_pred = np.zeros(10, int), np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    display = MisclassifiedImagesDisplay.from_predictions(y_true, y_pred, _images(10), n_images=3, ncols=2)
    assert display.indices.tolist() == [0, 2, 3] and display.confidence is None
    assert display.image_axes_[0].get_title() == "true: 0\npred: 1"


def test_misclassified_thumbnails_are_small(tmp_path):
    from PIL import Image

    paths = []
    for k in range(2):
        path = tmp_path / f"{k}.png"
        Image.new("RGB", (400, 200), (k, 0, 0)).save(path)
        paths.append(str(path))
    display = MisclassifiedImagesDisplay.from_predictions([0, 1], [1, 0], paths, thumbnail_size=50)
    assert [image.shape for image in display.images] == [(25, 50, 3), (25, 50, 3)]


def test_misclassified_from_estimator_uses_predict_proba(images_and_labels):
    import matplotlib.pyplot as plt

    X, y = images_and_labels
    clf = make_pipeline(PretrainedFeatureExtractor(**TINY), LogisticRegression(C=1e-3)).fit(X, y)
    y_flipped = np.where(y == "ant", "bee", "ant")  # every prediction that was right is now wrong
    proba = clf.predict_proba(X)
    _, ax = plt.subplots()
    display = MisclassifiedImagesDisplay.from_estimator(clf, X, y_flipped, n_images=4, ax=ax)
    assert display.ax_ is ax
    expected_pred = clf.classes_[proba.argmax(axis=1)]
    wrong = np.flatnonzero(expected_pred != y_flipped)
    assert display.indices.tolist() == wrong[np.argsort(-proba.max(axis=1)[wrong], kind="stable")][:4].tolist()
    np.testing.assert_allclose(display.confidence, proba.max(axis=1)[display.indices])


def test_misclassified_from_estimator_without_predict_proba(images_and_labels):
    from sklearn.svm import LinearSVC

    X, y = images_and_labels
    clf = make_pipeline(PretrainedFeatureExtractor(**TINY), LinearSVC()).fit(X, y)
    display = MisclassifiedImagesDisplay.from_estimator(clf, X, np.array(["wasp"] * len(y)))
    assert display.confidence is None and len(display.images) == len(y)


def test_embedding_map_colours_labels_and_projects_with_pca():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 6))
    labels = np.array(["x", "y", "z"] * 10)
    display = EmbeddingMapDisplay.from_embeddings(embeddings, labels, random_state=0)
    np.testing.assert_allclose(display.coordinates, PCA(2, random_state=0).fit_transform(embeddings))
    assert [s.get_label() for s in display.scatters_] == ["x", "y", "z"]
    assert [len(s.get_offsets()) for s in display.scatters_] == [10, 10, 10]
    assert display.ax_.get_xlabel() == "PCA 1" and display.ax_.get_legend() is not None


def test_embedding_map_tsne_and_thumbnails(images_and_labels):
    from matplotlib.offsetbox import AnnotationBbox

    X, y = images_and_labels
    extractor = PretrainedFeatureExtractor(**TINY).fit(X)
    tsne = TSNE(perplexity=3, init="pca", random_state=0)
    display = EmbeddingMapDisplay.from_estimator(extractor, X, y, method=tsne, n_thumbnails=3, thumbnail_size=8)
    assert display.coordinates.shape == (12, 2) and display.ax_.get_xlabel() == "TSNE 1"
    assert not hasattr(tsne, "embedding_")  # the given transformer is cloned, not fitted
    assert sorted(display.thumbnails) == [0, 6, 11]
    assert all(image.shape == (8, 8, 3) for image in display.thumbnails.values())
    assert sum(isinstance(a, AnnotationBbox) for a in display.ax_.artists) == 3


def test_embedding_map_tsne_by_name():
    embeddings = np.random.default_rng(0).normal(size=(40, 5))
    display = EmbeddingMapDisplay.from_embeddings(embeddings, method="tsne", random_state=0)
    assert display.coordinates.shape == (40, 2) and display.ax_.get_xlabel() == "t-SNE 1"


def test_embedding_map_without_labels_has_one_scatter_and_no_legend():
    display = EmbeddingMapDisplay.from_embeddings(np.eye(5))
    assert len(display.scatters_) == 1 and display.ax_.get_legend() is None


def test_training_curves_from_fine_tuner(fitted_fine_tuner):
    display = TrainingCurvesDisplay.from_estimator(fitted_fine_tuner)
    validated = fitted_fine_tuner.validation_history_
    source = validated if validated is not None else fitted_fine_tuner.history
    np.testing.assert_allclose(display.lines_["train_loss"].get_ydata(), source[:, "train_loss"])
    np.testing.assert_allclose(display.lines_["valid_acc"].get_ydata(), source[:, "valid_acc"])
    assert display.phase.tolist() == source[:, "phase"] == [1, 2]
    assert display.phase_switch_.get_xdata()[0] == 1.5
    assert display.accuracy_ax_ is not None


def test_training_curves_of_the_refit_run_have_no_validation_curves(fitted_fine_tuner):
    display = TrainingCurvesDisplay.from_estimator(fitted_fine_tuner, history="fit")
    if fitted_fine_tuner.validation_history_ is None:
        pytest.skip("this fit kept its validated run as history")
    assert sorted(display.lines_) == ["train_loss"] and display.accuracy_ax_ is None


def test_training_curves_single_phase_has_no_switch():
    history = [{"epoch": e, "phase": 2, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    display = TrainingCurvesDisplay.from_history(history)
    assert display.phase_switch_ is None and sorted(display.lines_) == ["train_loss"]
    ticks = display.ax_.get_xticks()
    assert np.array_equal(ticks, np.round(ticks))  # epochs are whole numbers, no 2.5


def test_display_pickles_and_replots_into_given_axes():
    import matplotlib.pyplot as plt

    display = TrainingCurvesDisplay.from_history([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
    fresh = pickle.loads(pickle.dumps(TrainingCurvesDisplay(display.epochs, display.train_loss)))
    _, ax = plt.subplots()
    assert fresh.plot(ax=ax).ax_ is ax

"""Catalogue of bad inputs for the diagnostic displays: one row each."""

import sys
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from _catalogue import Raises, assert_catalogue, check_row
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from sktransfer import FineTuneClassifier, PretrainedFeatureExtractor
from sktransfer.inspection import EmbeddingMapDisplay, MisclassifiedImagesDisplay, TrainingCurvesDisplay

TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, device="cpu")

IMAGES = np.zeros((4, 8, 8, 3), dtype=np.uint8)
Y = np.array(["a", "b", "a", "b"])
WRONG = np.array(["b", "a", "a", "b"])


def _without_matplotlib(c):
    with mock.patch.dict(sys.modules, {"matplotlib": None, "matplotlib.pyplot": None}):
        TrainingCurvesDisplay.from_history([{"train_loss": 1.0}])


ROWS = [
    (
        "misclassified-no-mistakes",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, Y, IMAGES),
        Raises(ValueError, "no images to show: all 4 predictions are correct"),
    ),
    (
        "misclassified-images-length",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, WRONG, IMAGES[:3]),
        Raises(ValueError, "images has 3 entries but y_true has 4"),
    ),
    (
        "misclassified-y-pred-length",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, WRONG[:2], IMAGES),
        Raises(ValueError, "y_pred has 2 entries but y_true has 4"),
    ),
    (
        "misclassified-y-true-2d",
        lambda c: MisclassifiedImagesDisplay.from_predictions(np.zeros((4, 2)), WRONG, IMAGES),
        Raises(ValueError, "y_true must be 1-D (one label per image), got an array of shape (4, 2)"),
    ),
    (
        "misclassified-confidence-is-proba-matrix",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, WRONG, IMAGES, confidence=np.full((4, 2), 0.5)),
        Raises(ValueError, "confidence must be 1-D"),
    ),
    (
        "misclassified-confidence-not-probability",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, WRONG, IMAGES, confidence=[3.0, 0.1, np.nan, 0.2]),
        Raises(ValueError, "confidence must hold probabilities in [0, 1]"),
    ),
    (
        "misclassified-n-images-zero",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, WRONG, IMAGES, n_images=0),
        Raises(ValueError, "n_images must be a positive integer, got 0"),
    ),
    (
        "misclassified-not-images",
        lambda c: MisclassifiedImagesDisplay.from_predictions(Y, WRONG, 42),
        Raises(TypeError, "images"),
    ),
    (
        "misclassified-estimator-not-fitted",
        lambda c: MisclassifiedImagesDisplay.from_estimator(LogisticRegression(), IMAGES, Y),
        Raises(NotFittedError, "LogisticRegression"),
    ),
    (
        "misclassified-estimator-y-length",
        lambda c: MisclassifiedImagesDisplay.from_estimator(c.fitted, IMAGES, Y[:3]),
        Raises(ValueError, "X has 4 entries but y has 3"),
    ),
    (
        "misclassified-empty-display-plot",
        lambda c: MisclassifiedImagesDisplay([], Y[:0], Y[:0]).plot(),
        Raises(ValueError, "has no images to show"),
    ),
    (
        "embedding-map-1d",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.zeros(5)),
        Raises(ValueError, "Expected 2D array"),
    ),
    (
        "embedding-map-one-row",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.zeros((1, 4))),
        Raises(ValueError, "minimum of 2 is required"),
    ),
    (
        "embedding-map-nan",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.array([[0.0, np.nan], [1.0, 2.0]])),
        Raises(ValueError, "embeddings contains NaN"),
    ),
    (
        "embedding-map-labels-length",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.zeros((4, 3)), ["a", "b"]),
        Raises(ValueError, "y has 2 entries but embeddings has 4"),
    ),
    (
        "embedding-map-unknown-method",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.zeros((4, 3)), method="umap"),
        Raises(ValueError, "method must be one of ('pca', 'tsne')"),
    ),
    (
        "embedding-map-method-not-transformer",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.zeros((4, 3)), method=LogisticRegression()),
        Raises(TypeError, "a transformer with fit_transform"),
    ),
    (
        "embedding-map-thumbnails-without-images",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.eye(4), n_thumbnails=2),
        Raises(ValueError, "n_thumbnails needs the images"),
    ),
    (
        "embedding-map-thumbnails-images-length",
        lambda c: EmbeddingMapDisplay.from_embeddings(np.eye(4), images=IMAGES[:2], n_thumbnails=2),
        Raises(ValueError, "images has 2 entries but embeddings has 4"),
    ),
    (
        "embedding-map-estimator-not-fitted",
        lambda c: EmbeddingMapDisplay.from_estimator(PretrainedFeatureExtractor(**TINY), IMAGES),
        Raises(NotFittedError, "PretrainedFeatureExtractor"),
    ),
    (
        "curves-not-fitted",
        lambda c: TrainingCurvesDisplay.from_estimator(FineTuneClassifier(**TINY)),
        Raises(NotFittedError, "FineTuneClassifier"),
    ),
    (
        "curves-empty-history",
        lambda c: TrainingCurvesDisplay.from_history([]),
        Raises(ValueError, "the history is empty"),
    ),
    (
        "curves-row-without-train-loss",
        lambda c: TrainingCurvesDisplay.from_history([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2}]),
        Raises(ValueError, "history row 2 has no 'train_loss'"),
    ),
    (
        "curves-row-not-dict",
        lambda c: TrainingCurvesDisplay.from_history([0.5, 0.4]),
        Raises(TypeError, "history row 1 is a float"),
    ),
    (
        "curves-unknown-history",
        lambda c: TrainingCurvesDisplay.from_estimator(c.fitted_tuner, history="best"),
        Raises(ValueError, "history must be one of ('auto', 'fit', 'validation')"),
    ),
    (
        "curves-ax-not-axes",
        lambda c: TrainingCurvesDisplay.from_history([{"train_loss": 1.0}], ax="left"),
        Raises(TypeError, "ax must be a matplotlib Axes or None, got str"),
    ),
    (
        "plot-without-matplotlib",
        _without_matplotlib,
        Raises(ImportError, "optional 'plot' extra"),
    ),
]


@pytest.fixture(scope="module")
def ctx(fitted_fine_tuner):
    from sklearn.pipeline import make_pipeline

    fitted = make_pipeline(PretrainedFeatureExtractor(**TINY), LogisticRegression()).fit(IMAGES, Y)
    return SimpleNamespace(fitted=fitted, fitted_tuner=fitted_fine_tuner)


def test_catalogue_size():
    assert_catalogue(ROWS, 25)


@pytest.mark.parametrize("row_id, fault, expected", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(row_id, fault, expected, ctx):
    check_row(fault, expected, ctx)

"""
Looking at a classifier: confusion matrix, worst mistakes, embedding map, learning curves
=========================================================================================

A frozen EfficientNet-Lite0 and a logistic regression learn ants from bees
on the 244 training photos of the PyTorch tutorial's data set; the 153
validation photos show where it goes wrong:

- scikit-learn's :class:`~sklearn.metrics.ConfusionMatrixDisplay` counts the
  mistakes;
- :class:`~sktransfer.inspection.MisclassifiedImagesDisplay` shows them, the
  most confidently wrong first (often a photo with both insects, or none);
- :class:`~sktransfer.inspection.EmbeddingMapDisplay` maps the embeddings in
  two dimensions, with a few thumbnails;
- :class:`~sktransfer.inspection.TrainingCurvesDisplay` draws a short
  fine-tuning run's losses and validation accuracy, the unfreezing marked.

Without the photos (see :func:`sktransfer.datasets.find_data_dir`), the same
plots are drawn on generated images of two kinds of texture, one label in ten
deliberately wrong.
"""

# %%
# The images
# ----------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split
from skorch.dataset import ValidSplit

from sktransfer import FineTuneClassifier, PretrainedFeatureExtractor
from sktransfer.datasets import fetch_hymenoptera, find_data_dir
from sktransfer.inspection import EmbeddingMapDisplay, MisclassifiedImagesDisplay, TrainingCurvesDisplay


def generated_images(n, seed):
    """Two classes of 96x96 images, fine grain and coarse blocks; one label in ten is wrong.

    The wrong labels stand for the label noise of real data sets: they are
    what the display of mistakes should bring up first.
    """
    rng = np.random.default_rng(seed)
    kinds = np.array(["grain", "blocks"] * (n // 2))
    images = []
    for kind in kinds:
        cell = 2 if kind == "grain" else 24
        small = rng.integers(0, 256, size=(96 // cell, 96 // cell, 3), dtype=np.uint8)
        images.append(np.kron(small, np.ones((cell, cell, 1), dtype=np.uint8)))
    labels = kinds.copy()
    flipped = rng.choice(n, size=n // 10, replace=False)
    labels[flipped] = np.where(kinds[flipped] == "grain", "blocks", "grain")
    return images, labels


if find_data_dir("hymenoptera") is not None:
    train, val = fetch_hymenoptera(subset="train"), fetch_hymenoptera(subset="val")
    X_train, y_train, X_val, y_val = train.paths, train.target, val.paths, val.target
else:
    X_train, y_train = generated_images(120, seed=0)
    X_val, y_val = generated_images(80, seed=1)
print(f"{len(X_train)} training and {len(X_val)} validation images")

# %%
# Frozen features and a linear classifier
# ---------------------------------------
# The embeddings are computed once and reused by every plot below.
extractor = PretrainedFeatureExtractor(model="efficientnet_lite0").fit(X_train)
embeddings_train, embeddings_val = extractor.transform(X_train), extractor.transform(X_val)
classifier = LogisticRegression(max_iter=2000).fit(embeddings_train, y_train)
proba = classifier.predict_proba(embeddings_val)
y_pred = classifier.classes_[proba.argmax(axis=1)]
print(f"validation accuracy: {np.mean(y_pred == y_val):.3f}")

# %%
# How many mistakes, of which kind
# --------------------------------
ConfusionMatrixDisplay.from_predictions(y_val, y_pred)
plt.show()

# %%
# The mistakes themselves, the most confident first
# -------------------------------------------------
# With a fitted pipeline taking images, ``from_estimator(pipeline, X_val, y_val)``
# does the same in one call.
mistakes = MisclassifiedImagesDisplay.from_predictions(y_val, y_pred, X_val, confidence=proba.max(axis=1), n_images=8)
plt.show()

# %%
# Where the images lie in the embedding space
# -------------------------------------------
EmbeddingMapDisplay.from_embeddings(
    embeddings_val, y_val, images=X_val, n_thumbnails=12, thumbnail_size=40, random_state=0
)
plt.show()

# %%
# Fine-tuning, epoch by epoch
# ---------------------------
# A short run on a quarter of the training images, holding out a fifth of
# them: the head (started as the linear probe of the embeddings) trains alone
# for one epoch, then the last layer group too.
# ``refit=False`` keeps the validated run in ``history``.
X_few, _, y_few, _ = train_test_split(X_train, y_train, train_size=0.25, stratify=y_train, random_state=0)
fine_tuner = FineTuneClassifier(
    unfreeze=1,
    head_epochs=1,
    max_epochs=4,
    train_split=ValidSplit(5, stratified=True),
    refit=False,
    random_state=0,
    verbose=0,
)
fine_tuner.fit(X_few, y_few)
TrainingCurvesDisplay.from_estimator(fine_tuner)
plt.show()

"""A grid of misclassified images, the most confidently wrong first.

The idea of fastai's ``plot_top_losses``, as a scikit-learn Display: each
image shows its true label, the predicted one and the probability the model
gave its prediction, so the mistakes a model is surest of (often label
noise, or a class it confuses systematically) come first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..image import check_images, load_image
from ._matplotlib import figure_and_axes
from ._validation import as_labels, check_count, check_same_length


class MisclassifiedImagesDisplay:
    """Misclassified images with their true and predicted labels and confidence.

    Build it with :meth:`from_estimator` or :meth:`from_predictions`; both
    pick the misclassified images, order them by the confidence of the wrong
    prediction (highest first; input order when no confidence is known),
    keep the first ``n_images`` as small thumbnails and draw them.

    Parameters
    ----------
    images : list of numpy.ndarray
        The thumbnails to show, RGB uint8 arrays of shape (height, width, 3).
    y_true : numpy.ndarray of shape (n_images,)
        Their true labels.
    y_pred : numpy.ndarray of shape (n_images,)
        Their predicted labels.
    confidence : numpy.ndarray of shape (n_images,) or None, default=None
        The probability the model gave each prediction.
    indices : numpy.ndarray of shape (n_images,) or None, default=None
        Each image's position in the input it was picked from.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    ax_ : matplotlib.axes.Axes
        The axes holding the grid (its own frame hidden).
    image_axes_ : list of matplotlib.axes.Axes
        One inset axes per image, in display order.

    See Also
    --------
    sklearn.metrics.ConfusionMatrixDisplay : How often each class is taken for each other.
    EmbeddingMapDisplay : Where the images lie in the embedding space.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sktransfer.inspection import MisclassifiedImagesDisplay
    >>> images = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    >>> display = MisclassifiedImagesDisplay.from_predictions(
    ...     ["ant", "bee", "bee", "ant"], ["ant", "ant", "bee", "bee"], images,
    ...     confidence=[0.9, 0.6, 0.8, 0.95])
    >>> display.indices.tolist()  # the most confident mistake first
    [3, 1]
    >>> len(display.image_axes_)
    2
    """

    def __init__(
        self,
        images: list[np.ndarray],
        y_true: np.ndarray,
        y_pred: np.ndarray,
        confidence: np.ndarray | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        self.images = images
        self.y_true = y_true
        self.y_pred = y_pred
        self.confidence = confidence
        self.indices = indices

    def plot(self, *, ax: Any = None, ncols: int | None = None) -> MisclassifiedImagesDisplay:
        """Draw the images in a grid, each titled with its labels.

        Parameters
        ----------
        ax : matplotlib.axes.Axes or None, default=None
            The axes to draw the grid into; a new figure when None.
        ncols : int or None, default=None
            Images per row; by default up to four.

        Returns
        -------
        self : MisclassifiedImagesDisplay
            With ``figure_``, ``ax_`` and ``image_axes_`` set.
        """
        n_images = len(self.images)
        if n_images == 0:
            raise ValueError("MisclassifiedImagesDisplay has no images to show")
        ncols = min(n_images, 4) if ncols is None else check_count(ncols, "ncols")
        nrows = math.ceil(n_images / ncols)
        caller = type(self).__name__
        new_figure = ax is None
        figure, ax = figure_and_axes(ax, caller, figsize=(2.2 * ncols, 2.6 * nrows))
        if new_figure:
            figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.94)
        ax.set_axis_off()
        self.image_axes_ = []
        for k, image in enumerate(self.images):
            row, col = divmod(k, ncols)
            cell = ax.inset_axes([col / ncols, 1 - (row + 1) / nrows, 0.94 / ncols, 0.74 / nrows])
            cell.imshow(image)
            cell.set_axis_off()
            title = f"true: {self.y_true[k]}\npred: {self.y_pred[k]}"
            if self.confidence is not None:
                title += f" ({self.confidence[k]:.2f})"
            cell.set_title(title, fontsize=8, color="darkred")
            self.image_axes_.append(cell)
        self.figure_, self.ax_ = figure, ax
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        n_images: int = 16,
        thumbnail_size: int = 128,
        ncols: int | None = None,
        ax: Any = None,
    ) -> MisclassifiedImagesDisplay:
        """Predict `X` with a fitted classifier and show the images it gets wrong.

        Parameters
        ----------
        estimator : fitted classifier
            A classifier of images (a :class:`~sktransfer.FrozenFeatureClassifier`,
            a :class:`~sktransfer.FineTuneClassifier`, a pipeline). With
            ``predict_proba``, the confidence of each prediction is shown and
            orders the images; otherwise ``predict`` is used, in input order.
        X : images
            The images, in any form the estimator accepts (paths, arrays...).
        y : array-like of shape (n_images,)
            Their true labels.
        n_images : int, default=16
            How many misclassified images to show at most.
        thumbnail_size : int, default=128
            The longest side of each thumbnail, in pixels.
        ncols : int or None, default=None
            Images per row; by default up to four.
        ax : matplotlib.axes.Axes or None, default=None
            The axes to draw into; a new figure when None.

        Returns
        -------
        display : MisclassifiedImagesDisplay
        """
        check_is_fitted(estimator)
        y = as_labels(y, "y")
        check_same_length(("y", len(y)), X=len(check_images(X, input_name="X")))
        if hasattr(estimator, "predict_proba"):
            proba = np.asarray(estimator.predict_proba(X))
            classes = np.asarray(estimator.classes_)
            if proba.shape != (len(y), len(classes)):
                raise ValueError(
                    f"{type(estimator).__name__}.predict_proba returned shape {proba.shape}, "
                    f"expected ({len(y)}, {len(classes)}): one column per class of classes_"
                )
            y_pred, confidence = classes[proba.argmax(axis=1)], proba.max(axis=1)
        else:
            y_pred, confidence = np.asarray(estimator.predict(X)), None
        return cls.from_predictions(
            y, y_pred, X, confidence=confidence, n_images=n_images, thumbnail_size=thumbnail_size, ncols=ncols, ax=ax
        )

    @classmethod
    def from_predictions(
        cls,
        y_true: Any,
        y_pred: Any,
        images: Any,
        *,
        confidence: Any = None,
        n_images: int = 16,
        thumbnail_size: int = 128,
        ncols: int | None = None,
        ax: Any = None,
    ) -> MisclassifiedImagesDisplay:
        """Show the images whose predicted label is not the true one.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            The true labels.
        y_pred : array-like of shape (n_samples,)
            The predicted labels.
        images : images
            The images, one per label: paths, arrays, PIL images, a 4-D
            array... (anything :func:`sktransfer.image.check_images` takes).
            Only the ones shown are read.
        confidence : array-like of shape (n_samples,) or None, default=None
            The probability the model gave each prediction (for example the
            row maximum of ``predict_proba``); the most confident mistakes
            are shown first. None keeps the input order.
        n_images : int, default=16
            How many misclassified images to show at most.
        thumbnail_size : int, default=128
            The longest side of each thumbnail, in pixels.
        ncols : int or None, default=None
            Images per row; by default up to four.
        ax : matplotlib.axes.Axes or None, default=None
            The axes to draw into; a new figure when None.

        Returns
        -------
        display : MisclassifiedImagesDisplay
        """
        y_true, y_pred = as_labels(y_true, "y_true"), as_labels(y_pred, "y_pred")
        items = check_images(images, input_name="images")
        n_images = check_count(n_images, "n_images")
        thumbnail_size = check_count(thumbnail_size, "thumbnail_size")
        if confidence is not None:
            confidence = np.asarray(confidence, dtype=float)
            if confidence.ndim != 1:
                raise ValueError(
                    f"confidence must be 1-D (the probability of each prediction), got shape {confidence.shape}"
                )
            if not np.all((confidence >= 0) & (confidence <= 1)):
                raise ValueError("confidence must hold probabilities in [0, 1] (no NaN)")
        check_same_length(
            ("y_true", len(y_true)),
            y_pred=len(y_pred),
            images=len(items),
            confidence=None if confidence is None else len(confidence),
        )
        wrong = np.flatnonzero(y_true != y_pred)
        if len(wrong) == 0:
            raise ValueError(f"no images to show: all {len(y_true)} predictions are correct")
        if confidence is not None:
            wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
        shown = wrong[:n_images]
        thumbnails = []
        for index in shown:
            image = load_image(items[index], source=f"images[{index}]")
            image.thumbnail((thumbnail_size, thumbnail_size))
            thumbnails.append(np.asarray(image))
        display = cls(
            thumbnails,
            y_true[shown],
            y_pred[shown],
            confidence=None if confidence is None else confidence[shown],
            indices=shown,
        )
        return display.plot(ax=ax, ncols=ncols)

"""A 2-D map of image embeddings, points coloured by label.

The embeddings are projected by scikit-learn (PCA, or t-SNE for a map that
keeps neighbourhoods rather than distances); thumbnails of a few images can
be drawn at their points to show what each region holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.utils.validation import check_array, check_is_fitted

from ..image import check_images, load_image
from ._matplotlib import figure_and_axes
from ._validation import as_labels, check_count, check_same_length

_METHODS = ("pca", "tsne")


def _projection(method: Any, random_state: Any) -> Any:
    if isinstance(method, str):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS} or a transformer with fit_transform, got {method!r}")
        if method == "pca":
            return PCA(n_components=2, random_state=random_state)
        return TSNE(n_components=2, init="pca", random_state=random_state)
    if not hasattr(method, "fit_transform"):
        raise TypeError(f"method must be one of {_METHODS} or a transformer with fit_transform, got {method!r}")
    return clone(method)


class EmbeddingMapDisplay:
    """Embeddings projected to two dimensions, points coloured by label.

    Build it with :meth:`from_estimator` (a feature extractor and images) or
    :meth:`from_embeddings` (an array you already have).

    Parameters
    ----------
    coordinates : numpy.ndarray of shape (n_samples, 2)
        The projected points.
    labels : numpy.ndarray of shape (n_samples,) or None, default=None
        Each point's label; one colour per label.
    thumbnails : dict of int to numpy.ndarray or None, default=None
        Point index -> a small RGB uint8 image to draw at that point.
    method : str, default=""
        The projection's name, for the axis labels.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    ax_ : matplotlib.axes.Axes
        The axes drawn into.
    scatters_ : list of matplotlib.collections.PathCollection
        One scatter per label (a single one without labels).

    See Also
    --------
    MisclassifiedImagesDisplay : The images a classifier gets wrong.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sktransfer.inspection import EmbeddingMapDisplay
    >>> rng = np.random.default_rng(0)
    >>> embeddings = np.vstack([rng.normal(0, 1, (20, 8)), rng.normal(4, 1, (20, 8))])
    >>> labels = ["ant"] * 20 + ["bee"] * 20
    >>> display = EmbeddingMapDisplay.from_embeddings(embeddings, labels, method="pca")
    >>> display.coordinates.shape
    (40, 2)
    >>> [s.get_label() for s in display.scatters_]
    ['ant', 'bee']
    """

    def __init__(
        self,
        coordinates: np.ndarray,
        labels: np.ndarray | None = None,
        thumbnails: dict[int, np.ndarray] | None = None,
        method: str = "",
    ) -> None:
        self.coordinates = coordinates
        self.labels = labels
        self.thumbnails = thumbnails
        self.method = method

    def plot(self, *, ax: Any = None, legend: bool = True, point_size: float = 12.0) -> EmbeddingMapDisplay:
        """Draw the points (one colour per label) and the thumbnails.

        Parameters
        ----------
        ax : matplotlib.axes.Axes or None, default=None
            The axes to draw into; a new figure when None.
        legend : bool, default=True
            Whether to show which colour is which label.
        point_size : float, default=12.0
            The marker area, in points squared.

        Returns
        -------
        self : EmbeddingMapDisplay
            With ``figure_``, ``ax_`` and ``scatters_`` set.
        """
        figure, ax = figure_and_axes(ax, type(self).__name__, figsize=(6, 5))
        points = np.asarray(self.coordinates)
        self.scatters_ = []
        if self.labels is None:
            self.scatters_.append(ax.scatter(points[:, 0], points[:, 1], s=point_size))
        else:
            labels = np.asarray(self.labels)
            for label in np.unique(labels):
                mine = labels == label
                self.scatters_.append(ax.scatter(points[mine, 0], points[mine, 1], s=point_size, label=str(label)))
        if self.thumbnails:
            from matplotlib.offsetbox import AnnotationBbox, OffsetImage

            for index, image in self.thumbnails.items():
                box = AnnotationBbox(OffsetImage(image, zoom=1.0), tuple(points[index]), frameon=True, pad=0.1)
                ax.add_artist(box)
        name = {"pca": "PCA", "tsne": "t-SNE"}.get(self.method, self.method or "component")
        ax.set_xlabel(f"{name} 1")
        ax.set_ylabel(f"{name} 2")
        if legend and self.labels is not None:
            ax.legend(title="label", markerscale=2)
        self.figure_, self.ax_ = figure, ax
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any = None,
        *,
        method: Any = "pca",
        n_thumbnails: int = 0,
        thumbnail_size: int = 32,
        random_state: Any = None,
        ax: Any = None,
    ) -> EmbeddingMapDisplay:
        """Embed images with a fitted transformer and map the embeddings.

        Parameters
        ----------
        estimator : fitted transformer
            Turns images into embeddings with ``transform``, such as a fitted
            :class:`~sktransfer.PretrainedFeatureExtractor`.
        X : images
            The images, in any form the estimator accepts.
        y : array-like of shape (n_samples,) or None, default=None
            Their labels, for the colours.
        method : {"pca", "tsne"} or transformer, default="pca"
            The projection to two dimensions: scikit-learn's PCA, its t-SNE
            (``perplexity`` 30 needs more than 30 images), or any transformer
            with ``fit_transform`` giving two columns (cloned, not changed).
        n_thumbnails : int, default=0
            How many images to draw at their points, evenly spread over the
            input order.
        thumbnail_size : int, default=32
            The longest side of each thumbnail, in pixels.
        random_state : int, RandomState instance or None, default=None
            Seed of the PCA or t-SNE projection.
        ax : matplotlib.axes.Axes or None, default=None
            The axes to draw into; a new figure when None.

        Returns
        -------
        display : EmbeddingMapDisplay
        """
        check_is_fitted(estimator)
        embeddings = estimator.transform(X)
        return cls.from_embeddings(
            embeddings,
            y,
            images=X if n_thumbnails else None,
            method=method,
            n_thumbnails=n_thumbnails,
            thumbnail_size=thumbnail_size,
            random_state=random_state,
            ax=ax,
        )

    @classmethod
    def from_embeddings(
        cls,
        embeddings: Any,
        y: Any = None,
        *,
        images: Any = None,
        method: Any = "pca",
        n_thumbnails: int = 0,
        thumbnail_size: int = 32,
        random_state: Any = None,
        ax: Any = None,
    ) -> EmbeddingMapDisplay:
        """Map embeddings you already have (from ``transform`` or a store).

        Parameters
        ----------
        embeddings : array-like of shape (n_samples, n_features)
            One row per image, finite.
        y : array-like of shape (n_samples,) or None, default=None
            Their labels, for the colours.
        images : images or None, default=None
            The images, one per row, for the thumbnails.
        method : {"pca", "tsne"} or transformer, default="pca"
            The projection to two dimensions (see :meth:`from_estimator`).
        n_thumbnails : int, default=0
            How many images to draw at their points (needs `images`).
        thumbnail_size : int, default=32
            The longest side of each thumbnail, in pixels.
        random_state : int, RandomState instance or None, default=None
            Seed of the PCA or t-SNE projection.
        ax : matplotlib.axes.Axes or None, default=None
            The axes to draw into; a new figure when None.

        Returns
        -------
        display : EmbeddingMapDisplay
        """
        embeddings = check_array(embeddings, input_name="embeddings", ensure_min_samples=2)
        labels = None if y is None else as_labels(y, "y")
        check_same_length(("embeddings", len(embeddings)), y=None if labels is None else len(labels))
        projection = _projection(method, random_state)
        thumbnails = {}
        if n_thumbnails:
            n_thumbnails = check_count(n_thumbnails, "n_thumbnails")
            thumbnail_size = check_count(thumbnail_size, "thumbnail_size")
            if images is None:
                raise ValueError("n_thumbnails needs the images: pass images= (or use from_estimator)")
            items = check_images(images, input_name="images")
            check_same_length(("embeddings", len(embeddings)), images=len(items))
            picked = np.unique(np.linspace(0, len(items) - 1, min(n_thumbnails, len(items))).round().astype(int))
            for index in picked:
                image = load_image(items[index], source=f"images[{index}]")
                image.thumbnail((thumbnail_size, thumbnail_size))
                thumbnails[int(index)] = np.asarray(image)
        coordinates = np.asarray(projection.fit_transform(embeddings))
        if coordinates.ndim != 2 or coordinates.shape != (len(embeddings), 2):
            raise ValueError(
                f"the projection must give two columns, one row per embedding; {type(projection).__name__} "
                f"gave shape {coordinates.shape}"
            )
        name = method if isinstance(method, str) else type(projection).__name__
        return cls(coordinates, labels, thumbnails=thumbnails, method=name).plot(ax=ax)

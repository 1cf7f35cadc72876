"""Validation shared by the estimators that take images as input.

Images arrive as paths, PIL images, arrays, tensors, pandas columns... or,
from scikit-learn tooling, as a 2-D numeric table whose rows are flattened
images. This mixin turns any of them into a list of image items and keeps
the ``n_features_in_`` bookkeeping scikit-learn expects for tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from ._collections import check_images, is_image_item, rows_to_images


def _check_label_values(y):
    """Missing labels and labels of mixed types are errors naming y (numpy's sort would not say)."""
    if y.dtype != object:
        return
    missing = [i for i, label in enumerate(y.tolist()) if label is None]
    if missing:
        raise ValueError(f"y contains None at position(s) {missing[:10]}; every image needs a label")
    kinds = sorted({type(label).__name__ for label in y.tolist()})
    try:
        np.unique(y)
    except TypeError:
        raise ValueError(
            f"y mixes label types that cannot be compared ({', '.join(kinds)}); use labels of one type"
        ) from None


def check_image_labels(y: ArrayLike, n_images: int) -> NDArray:
    """``y`` as a 1-D array of class labels, one per image, or a ValueError saying what is wrong.

    The label checks of every classifier that takes images: a column,
    no missing or incomparable labels, classification targets, as many as
    the images. Whether ``y`` may be None, and how many classes it needs,
    is the caller's to say.

    Examples
    --------
    >>> from sktransfer.image._validation import check_image_labels
    >>> check_image_labels(["ant", "bee"], 2).tolist()
    ['ant', 'bee']
    """
    y = column_or_1d(y, warn=True)
    _check_label_values(y)
    check_classification_targets(y)
    if len(y) != n_images:
        raise ValueError(f"X has {n_images} images but y has {len(y)} labels; give one label per image")
    return y


def _holds_images(array):
    """Whether an object array holds any path, encoded image or in-memory image."""
    return any(is_image_item(item) for item in array.ravel())


def _is_numeric_table(X):
    """A 2-D numeric array, an all-numeric DataFrame, or a 2-D object table of numbers.

    Object arrays with several columns are tables too (scikit-learn
    converts them to numbers or says why it cannot), unless they hold
    paths or images: those are a collection of images in the wrong shape,
    and ``check_images`` says so by position.
    """
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        # pandas extension dtypes (strings, categoricals) have kind "O".
        return X.shape[1] > 1 and all(getattr(dt, "kind", "O") in "biufc" for dt in X.dtypes)
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):  # scipy sparse
        return True
    nested = isinstance(X, (list, tuple)) and len(X) > 0 and isinstance(X[0], (list, tuple))
    if nested or (not isinstance(X, np.ndarray) and hasattr(X, "__array__") and not hasattr(X, "unbind")):
        X = np.asarray(X)  # lists of rows, array-likes that are not torch tensors
    if isinstance(X, np.ndarray) and X.ndim == 2:
        if X.dtype.kind in "biufc":
            return True
        return X.dtype.kind == "O" and X.shape[1] > 1 and not _holds_images(X)
    return False


def _describe_collection(X):
    """E.g. "a list of 3 items (str, ...)" or "a 4-D ndarray of shape (2, 8, 8, 3)"."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) != 1:
        return f"a {len(shape)}-D {type(X).__name__} of shape {tuple(shape)}"
    try:
        first = next(iter(X))
    except (TypeError, StopIteration):
        return f"a {type(X).__name__}"
    items = "item" if len(X) == 1 else "items"
    return f"a {type(X).__name__} of {len(X)} {items} ({type(first).__name__}, ...)"


#: Lazy collections of other libraries, by top-level module, and the call
#: that embeds them where they live.
_LAZY_COLLECTIONS = {
    "dask": "sktransfer.parallel.dask_transform(extractor, X) (a dask Series or one-column "
    "DataFrame of images, embedded partition by partition on the workers)",
    "ray": "ds.map_batches(sktransfer.parallel.RayEmbedder, fn_constructor_args=(extractor,), "
    "compute=ray.data.ActorPoolStrategy(size=...))",
}


def _check_not_lazy(X, input_name):
    """Refuse a dask or Ray collection, naming the call that embeds it.

    Found by the module of its type, so that neither library is imported.
    """
    library = type(X).__module__.partition(".")[0]
    if library in _LAZY_COLLECTIONS:
        raise TypeError(
            f"{input_name} is a {library} {type(X).__name__}, a lazy collection; estimators take "
            f"in-memory images (call .compute() on a small one). To embed it where it lives, use "
            f"{_LAZY_COLLECTIONS[library]}"
        )


def _is_empty_collection(X):
    """A list, tuple, 1-D array, Series or one-column DataFrame with no rows."""
    if isinstance(X, (list, tuple)):
        return len(X) == 0
    shape = getattr(X, "shape", None)
    if not isinstance(shape, tuple) or not shape or shape[0] != 0:
        return False
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1 and hasattr(X, "columns"))


def _answers_empty_input(estimator):
    """Whether an empty collection gets an empty answer rather than an error.

    Only fitted transformers whose output width is known (``n_features_out_``)
    and that take image collections (not tables, which keep scikit-learn's
    checks).
    """
    return hasattr(estimator, "n_features_out_") and not hasattr(estimator, "n_features_in_")


def validate_images(estimator: Any, X: Any, *, reset: bool, input_name: str = "X") -> list:
    """``X`` checked for an image estimator: the list of its image items, or an error naming what is wrong.

    The images counterpart of scikit-learn's ``validate_data``: a numeric
    table of flattened images is laid out by the estimator's
    ``image_shape`` and sets (``reset=True``) or checks ``n_features_in_``;
    any other collection goes through :func:`check_images`.

    Parameters
    ----------
    estimator : estimator with an ``image_shape`` parameter
    X : images
    reset : bool
        True in ``fit``: forget (or record) what the previous fit saw.
    input_name : str, default="X"
        How errors name the input.

    Returns
    -------
    list
        The image items (None for a missing one).
    """
    _check_not_lazy(X, input_name)
    if not reset and _answers_empty_input(estimator) and _is_empty_collection(X):
        # No images, no rows: an empty answer of the known width (what
        # dask asks for to learn the output's type). Fitting on nothing
        # still fails below.
        return []
    if _is_numeric_table(X):
        # An estimator fitted on images accepts a table too when its
        # rows are unambiguous images: rows_to_images checks that.
        X = validate_data(estimator, X, reset=reset, dtype="numeric")
        return rows_to_images(X, estimator.image_shape, input_name=input_name)
    if reset:
        # Image collections have no fixed feature count.
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(estimator, attr):
                delattr(estimator, attr)
    elif hasattr(estimator, "n_features_in_"):
        if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "biuf":
            # One table row without its batch axis: scikit-learn's own
            # message ("Reshape your data ...") says exactly that.
            validate_data(estimator, X, reset=False, dtype="numeric")
        raise ValueError(
            f"{type(estimator).__name__} was fitted on a numeric table of flattened "
            f"images with {estimator.n_features_in_} columns, and {input_name} is "
            f"{_describe_collection(X)}, not such a table. Pass a table with "
            f"{estimator.n_features_in_} columns, or refit on the images"
        )
    return check_images(X, input_name=input_name)


class ImageInputMixin:
    """Mixin: ``_validate_images(X, reset)`` -> list of image items (:func:`validate_images`).

    Estimators using it declare an ``image_shape`` parameter that lays out
    the rows of numeric tables (see :func:`sktransfer.image._collections.rows_to_images`).
    """

    def _validate_images(self, X, *, reset, input_name="X"):
        return validate_images(self, X, reset=reset, input_name=input_name)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Paths are strings, and a batch of greyscale images is a 3-D array:
        # both are inputs here, unlike for a table-only estimator.
        tags.input_tags.string = True
        tags.input_tags.three_d_array = True
        return tags

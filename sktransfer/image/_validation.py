"""Validation shared by the estimators that take images as input.

Images arrive as paths, PIL images, arrays, tensors, pandas columns... or,
from scikit-learn tooling, as a 2-D numeric table whose rows are flattened
images. This mixin turns any of them into a list of image items and keeps
the ``n_features_in_`` bookkeeping scikit-learn expects for tables.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from ._collections import check_images, is_image_item, rows_to_images


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


class ImageInputMixin:
    """Mixin: ``_validate_images(X, reset)`` -> list of image items.

    Estimators using it declare an ``image_shape`` parameter that lays out
    the rows of numeric tables (see :func:`sktransfer.image._collections.rows_to_images`).
    """

    def _validate_images(self, X, *, reset, input_name="X"):
        if _is_numeric_table(X):
            # An estimator fitted on images accepts a table too when its
            # rows are unambiguous images: rows_to_images checks that.
            X = validate_data(self, X, reset=reset, dtype="numeric")
            return rows_to_images(X, self.image_shape, input_name=input_name)
        if reset:
            # Image collections have no fixed feature count.
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(self, attr):
                    delattr(self, attr)
        elif hasattr(self, "n_features_in_"):
            if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "biuf":
                # One table row without its batch axis: scikit-learn's own
                # message ("Reshape your data ...") says exactly that.
                validate_data(self, X, reset=False, dtype="numeric")
            raise ValueError(
                f"{type(self).__name__} was fitted on a numeric table of flattened "
                f"images with {self.n_features_in_} columns, and {input_name} is "
                f"{_describe_collection(X)}, not such a table. Pass a table with "
                f"{self.n_features_in_} columns, or refit on the images"
            )
        return check_images(X, input_name=input_name)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

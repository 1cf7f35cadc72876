"""Validation shared by the estimators that take images as input.

Images arrive as paths, PIL images, arrays, tensors, pandas columns... or,
from scikit-learn tooling, as a 2-D numeric table whose rows are flattened
images. This mixin turns any of them into a list of image items and keeps
the ``n_features_in_`` bookkeeping scikit-learn expects for tables.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from ._collections import check_images, rows_to_images


def _is_numeric_table(X):
    """A 2-D numeric array, an all-numeric DataFrame, or a 2-D object table.

    Object arrays with several columns are tables too: scikit-learn
    converts them to numbers or says why it cannot.
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
        return X.dtype.kind in "biufc" or (X.dtype.kind == "O" and X.shape[1] > 1)
    return False


class ImageInputMixin:
    """Mixin: ``_validate_images(X, reset)`` -> list of image items.

    Estimators using it declare an ``image_shape`` parameter that lays out
    the rows of numeric tables (see :func:`sktransfer.image._collections.rows_to_images`).
    """

    def _validate_images(self, X, *, reset, input_name="X"):
        if _is_numeric_table(X):
            X = validate_data(self, X, reset=reset, dtype="numeric")
            return rows_to_images(X, self.image_shape, input_name=input_name)
        if reset:
            # Image collections have no fixed feature count.
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(self, attr):
                    delattr(self, attr)
        elif hasattr(self, "n_features_in_"):
            # Fitted on a table: the input must be one too (scikit-learn's
            # own messages say what is wrong, e.g. "Reshape your data").
            validate_data(self, X, reset=False, dtype="numeric")
        return check_images(X, input_name=input_name)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

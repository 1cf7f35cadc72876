"""Image collections: validate what users pass as ``X`` before any decoding.

Cheap checks only (container type, item types, array layouts); no file is
opened here, so errors about the *collection* come before any slow work.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from .._typing import ImageCollection, ImageItem
from ._decode import _is_pandas, _is_tensor
from ._remote import is_url, require_fsspec

__all__ = ["check_images", "infer_image_shape", "is_missing", "rows_to_images"]


def _wrap_hint(input_name):
    return f"wrap it in a list: {input_name}=[image]"


def is_image_item(item: object) -> bool:
    """Whether ``item`` is one image of a kind ``load_image`` reads (no file access)."""
    return isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)) or _is_tensor(
        item
    )


def is_missing(item: object) -> bool:
    """Whether ``item`` is a missing value: None, a float NaN, pandas.NA or NaT.

    Examples
    --------
    >>> is_missing(None), is_missing(float("nan")), is_missing("cat.jpg")
    (True, True, False)
    """
    if item is None or (isinstance(item, (float, np.floating)) and math.isnan(item)):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and (item is pandas.NA or item is pandas.NaT)


def _check_item(item, index, input_name, items):
    """Cheap per-item type check (no file access)."""
    if isinstance(item, (str, os.PathLike)):
        if not os.fspath(item):
            raise ValueError(f"{input_name}[{index}] is an empty path")
        if is_url(item):
            require_fsspec(item)
        return
    if is_image_item(item):
        return
    mixed = ""
    if any(is_image_item(other) for other in items):
        mixed = f" ({input_name} mixes images with {type(item).__name__} values)"
    raise TypeError(
        f"{input_name}[{index}] has type {type(item).__name__} (value {item!r:.40}){mixed}; "
        "expected a path (str or os.PathLike), bytes, a PIL image, a numpy array "
        "or a torch tensor"
    )


def _split_4d(array, input_name):
    """Split a 4-D numpy batch into HWC arrays, deciding the channel axis."""
    _, axis1, height_or_width, last = array.shape
    channels_last = last in (1, 3, 4)
    channels_first = axis1 in (1, 3)
    if channels_last and channels_first:
        # Both readings fit (e.g. 3x4x4 or 4x4x3 after the batch axis): the
        # channel axis is the one smaller than the two spatial axes; when
        # that does not decide, numpy's usual channels-last wins.
        channels_last = not (axis1 < last and axis1 < height_or_width)
        channels_first = not channels_last
    if channels_last:
        return list(array)
    if channels_first:
        return [np.moveaxis(image, 0, -1) for image in array]
    raise ValueError(
        f"{input_name} is a 4-D array of shape {array.shape}: expected "
        "(n_images, height, width, channels) with 1, 3 or 4 channels, or "
        "(n_images, channels, height, width) with 1 or 3 channels"
    )


def _numeric_array_items(array, input_name):
    if array.ndim == 4:
        return _split_4d(array, input_name)
    if array.ndim == 3:
        return list(array)
    if array.ndim == 2:
        raise ValueError(
            f"{input_name} is a 2-D numeric array of shape {array.shape}; expected "
            "a collection of images, e.g. an (n_images, height, width[, channels]) "
            f"array. For a single greyscale image, {_wrap_hint(input_name)}"
        )
    raise ValueError(
        f"{input_name} is a {array.ndim}-D numeric array of shape {array.shape}; "
        "expected paths, or a 3-D (n_images, height, width) or 4-D image batch"
    )


def _tensor_items(tensor, input_name):
    shape = tuple(tensor.shape)
    if tensor.ndim == 4:
        if shape[1] not in (1, 3, 4):
            raise ValueError(
                f"{input_name} is a 4-D tensor of shape {shape}; expected "
                "(n_images, channels, height, width) with 1, 3 or 4 channels"
            )
        return list(tensor.unbind(0))
    if tensor.ndim == 3:
        return list(tensor.unbind(0))
    raise ValueError(
        f"{input_name} is a {tensor.ndim}-D tensor of shape {shape}; expected "
        "(n_images, channels, height, width) or (n_images, height, width)"
    )


def check_images(X: ImageCollection, *, input_name: str = "X") -> list[ImageItem | None]:
    """Validate a collection of images and return it as a list of items.

    Only the container and the item types are checked; no file is opened.

    Accepted containers:

    - a list or tuple of paths, bytes, PIL images, arrays or tensors;
    - a 1-D numpy array of strings or objects (or an (n, 1) one);
    - paths may be URLs (``s3://``, ``https://``, ``memory://``, ``file://``),
      read through fsspec (the ``remote`` extra);
    - a pandas Series, or a DataFrame with exactly one column;
    - a 4-D numpy array: (N, H, W, C) when the last axis has 1, 3 or 4
      entries, (N, C, H, W) when the second axis has 1 or 3. When both fit,
      the axis smaller than the two others is the channel axis; if that does
      not decide, channels-last is assumed. Items are HWC arrays;
    - a 3-D numeric array: N greyscale images of H x W;
    - a 4-D torch tensor (N, C, H, W), giving CHW tensors, or a 3-D one
      (N, H, W) of greyscale images.

    Parameters
    ----------
    X : collection of images
        See above.
    input_name : str, default="X"
        Name used in error messages.

    Returns
    -------
    list
        One item per image, in input order. Missing values (None, float
        NaN, pandas.NA, NaT) are kept as None, for the caller to refuse or
        to give a NaN row; nothing is dropped.

    Raises
    ------
    ValueError
        Empty input, a single image or path passed
        instead of a collection, a DataFrame with several columns, or an
        array of unusable shape.
    TypeError
        A container or item of an unsupported type.
    ImportError
        A URL when fsspec is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> items = check_images(np.zeros((2, 3, 8, 8), dtype=np.uint8))
    >>> len(items), items[0].shape
    (2, (8, 8, 3))
    """
    if isinstance(X, (str, os.PathLike)):
        raise ValueError(
            f"{input_name} is a single path ({os.fspath(X)!r}), expected a "
            f"collection of images; {_wrap_hint(input_name)}"
        )
    if isinstance(X, (bytes, bytearray)):
        raise ValueError(
            f"{input_name} is a single encoded image ({len(X)} bytes), expected "
            f"a collection of images; {_wrap_hint(input_name)}"
        )
    if isinstance(X, Image.Image):
        raise ValueError(
            f"{input_name} is a single PIL image, expected a collection of images; {_wrap_hint(input_name)}"
        )
    if _is_pandas(X, "DataFrame"):
        if X.shape[1] != 1:
            raise ValueError(
                f"{input_name} is a DataFrame with {X.shape[1]} columns "
                f"{list(X.columns)}; pass one column of images, e.g. "
                f"{input_name}[[column_name]] or {input_name}[column_name]"
            )
        items = X.iloc[:, 0].tolist()
    elif _is_pandas(X, "Series"):
        items = X.tolist()
    elif isinstance(X, (list, tuple)):
        items = list(X)
    elif isinstance(X, np.ndarray):
        if X.dtype.kind in "OUS":
            if X.ndim == 2 and X.shape[1] == 1:
                X = X[:, 0]
            if X.ndim != 1:
                raise ValueError(
                    f"{input_name} is a {X.ndim}-D array of {X.dtype} of shape "
                    f"{X.shape}; expected a 1-D array (or a single column) of paths or images"
                )
            items = X.tolist()
        elif X.dtype.kind in "biuf":
            items = _numeric_array_items(X, input_name)
        else:
            raise TypeError(f"{input_name} is an array of unsupported dtype {X.dtype}")
    elif _is_tensor(X):
        items = _tensor_items(X, input_name)
    else:
        raise TypeError(
            f"{input_name} has type {type(X).__name__}; expected a list, tuple, "
            "numpy array, pandas Series, one-column DataFrame or torch tensor of images"
        )
    if not items:
        raise ValueError(f"{input_name} is empty; expected at least one image")
    for index, item in enumerate(items):
        if is_missing(item):
            # Kept in place (as None) so rows stay aligned: a table where
            # some rows lack a photo is normal data. Decoding reports them
            # as unreadable (on_error="nan" gives NaN rows).
            items[index] = None
        else:
            _check_item(item, index, input_name, items)
    return items


def _square_side(n):
    """The integer ``side`` with ``side * side == n``, or None."""
    side = math.isqrt(n)
    return side if side * side == n else None


def infer_image_shape(n_features: int, input_name: str = "X") -> tuple[int, ...]:
    """The image layout of a table row of ``n_features`` values, when unambiguous.

    A perfect square is a square greyscale image; three times a perfect
    square is a square RGB image (channels last). Any other length has no
    single reading (a 1x30 strip? 5x6? 2x5x3?), so it is an error rather
    than a guess: the classic mistake is passing embeddings or a feature
    table to an image estimator, and that must not silently "work".

    Parameters
    ----------
    n_features : int
        Number of columns of the table.
    input_name : str, default="X"
        Name used in the error message.

    Returns
    -------
    tuple of int
        ``(side, side)`` or ``(side, side, 3)``.

    Raises
    ------
    ValueError
        When the row length is neither a square nor three times a square.

    Examples
    --------
    >>> infer_image_shape(64), infer_image_shape(48)
    ((8, 8), (4, 4, 3))
    """
    n_features = int(n_features)
    side = _square_side(n_features)
    if side:
        return (side, side)
    side3 = _square_side(n_features // 3) if n_features % 3 == 0 else None
    if side3:
        return (side3, side3, 3)
    raise ValueError(
        f"{input_name} is a numeric table with {n_features} columns, which is not "
        "an image of unambiguous shape: rows of a table are read as flattened "
        "images only when their length is a square (square greyscale images) or "
        "three times a square (square RGB images). For other images pass "
        "image_shape=(height, width) or (height, width, channels), or pass the "
        "images themselves (paths, PIL images, arrays). If these are embeddings "
        "or other features, they belong in a classifier (e.g. "
        "sklearn.linear_model.LogisticRegression), not in an image estimator"
    )


def rows_to_images(
    X: ArrayLike, image_shape: Literal["auto"] | tuple[int, ...], input_name: str = "X"
) -> list[np.ndarray]:
    """Reshape the rows of a 2-D numeric array into images.

    Each row is one flattened image, laid out as ``image_shape``:
    ``(height, width)``, ``(height, width, channels)`` (channels last, 1, 3
    or 4 of them) or ``"auto"``. ``"auto"`` accepts only unambiguous rows:
    a square greyscale image when the row length is a perfect square, a
    square RGB image when a third of it is (see :func:`infer_image_shape`);
    any other row length is a ValueError asking for ``image_shape``.
    Float values in [0, 1] are pixel intensities; other float ranges are
    rescaled per image to [0, 1] by their minimum and maximum.

    Parameters
    ----------
    X : array-like of shape (n_images, n_features)
        Numeric table, one flattened image per row.
    image_shape : "auto" or tuple of int
        Layout of one row.
    input_name : str, default="X"
        Name used in error messages.

    Returns
    -------
    list of numpy.ndarray
        One HW or HWC array per row.

    Raises
    ------
    ValueError
        A row length with no unambiguous image shape, an ``image_shape``
        whose size differs from the row length, or NaN/infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> [image.shape for image in rows_to_images(np.zeros((2, 27)), "auto")]
    [(3, 3, 3), (3, 3, 3)]
    """
    X = np.asarray(X)
    n_features = X.shape[1]
    if isinstance(image_shape, str):
        image_shape = infer_image_shape(n_features, input_name)
    image_shape = tuple(int(s) for s in image_shape)
    if int(np.prod(image_shape)) != n_features:
        raise ValueError(
            f"{input_name} has {n_features} columns, which cannot be reshaped to "
            f"image_shape={image_shape} ({int(np.prod(image_shape))} values per image)"
        )
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        bad = np.flatnonzero(~np.all(np.isfinite(X), axis=1))
        raise ValueError(f"{input_name} has NaN or infinite values in rows {bad[:10].tolist()}")
    images = X.reshape((X.shape[0],) + image_shape)
    if images.dtype.kind == "f":
        images = _rescale_float_images(images.astype(np.float32))
    return list(images)


def _rescale_float_images(images):
    """Rescale to [0, 1], per image, the float images that leave that range."""
    flat = images.reshape(len(images), -1)
    lo, hi = flat.min(1), flat.max(1)
    outside = (lo < 0) | (hi > 1)
    if not outside.any():
        return images
    span = np.where(hi > lo, hi - lo, 1.0)
    shape = (-1,) + (1,) * (images.ndim - 1)
    scaled = (images - lo.reshape(shape)) / span.reshape(shape)
    return np.where(outside.reshape(shape), scaled, images)

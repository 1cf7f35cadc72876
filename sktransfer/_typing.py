"""Type aliases of the public signatures, named once for the whole package.

Only what several modules' hints share lives here. Nothing here imports
torch, PIL or pandas at run time (``import sktransfer.shift`` must stay
light): the aliases name their types as strings, which a type checker
resolves through the ``TYPE_CHECKING`` imports below, and hints that name
those types directly import them under ``if TYPE_CHECKING:`` in their own
module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from PIL import Image

#: A file-system path: a string or an ``os.PathLike`` such as ``pathlib.Path``.
StrPath = str | os.PathLike[str]

#: scikit-learn's ``random_state``: a seed, a ``RandomState`` or ``None``.
RandomStateLike = int | np.random.RandomState | None


class Estimator(Protocol):
    """Anything scikit-learn would fit: an estimator, a Pipeline, a search.

    Parameters are checked at run time with scikit-learn's ``HasMethods``,
    which asks for methods only, not for a base class; so does this protocol.
    """

    def fit(self, *args: Any, **kwargs: Any) -> Any: ...


class CrossValidator(Protocol):
    """A cross-validation splitter (``KFold``, ``StratifiedKFold``...)."""

    def split(self, *args: Any, **kwargs: Any) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp]]]: ...

    def get_n_splits(self, *args: Any, **kwargs: Any) -> int: ...


#: scikit-learn's ``cv``: a number of folds, a splitter or an iterable of
#: (train, test) index arrays.
CVLike = int | CrossValidator | Iterable[tuple[NDArray[np.intp], NDArray[np.intp]]]

# typing.Union rather than ``|``: the torch, PIL and pandas members must stay
# strings (forward references) at run time, and ``str | "torch.Tensor"``
# is a TypeError before Python 3.14.

#: One image as :func:`sktransfer.image.load_image` reads it: a path or URL,
#: encoded bytes, a PIL image, a numpy HWC/HW array or a torch CHW/HW tensor.
ImageItem = Union[str, os.PathLike, bytes, bytearray, memoryview, "Image.Image", np.ndarray, "torch.Tensor"]

#: A collection of images as :func:`sktransfer.image.check_images` accepts it:
#: a sequence of items (None for a missing one), a 1-D array of paths, a
#: 3-D/4-D array or tensor of pixels, a pandas Series or one-column DataFrame.
ImageCollection = Union[Sequence[ImageItem | None], np.ndarray, "torch.Tensor", "pd.Series", "pd.DataFrame"]

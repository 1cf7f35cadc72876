"""Type aliases of the public signatures, named once for the whole package.

Only what several modules' hints share lives here. Nothing here imports
torch, PIL or pandas: hints that name those import them under
``if TYPE_CHECKING:`` in their own module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

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

"""Where data sets are kept on disk, and where an existing copy is found."""

from __future__ import annotations

import os
from pathlib import Path

from .._typing import StrPath

__all__ = ["DATA_HOME_ENV", "DEFAULT_DATA_HOME", "find_data_dir", "get_data_home"]

#: Environment variable naming the data folder, like scikit-learn's
#: ``SCIKIT_LEARN_DATA``.
DATA_HOME_ENV = "SKTRANSFER_DATA"

#: Used when neither an argument nor the environment variable names one.
DEFAULT_DATA_HOME = os.path.join("~", "sktransfer_data")

# A source checkout is recognised by this file beside the package folder.
_CHECKOUT_MARKER = "pyproject.toml"


def get_data_home(data_home: StrPath | None = None) -> str:
    """Return the folder where sktransfer keeps downloaded data sets.

    In order: the `data_home` argument, the ``SKTRANSFER_DATA`` environment
    variable, then ``~/sktransfer_data``. ``~`` is expanded. The folder is not
    created here; fetchers create it when they download into it.

    Parameters
    ----------
    data_home : str or os.PathLike or None, default=None
        Explicit folder; None falls back as described above.

    Returns
    -------
    str
        The data folder path.

    Examples
    --------
    >>> get_data_home("/tmp/my_data")
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    return os.path.expanduser(os.fspath(data_home))


def _checkout_data_home():
    """``shared/data`` beside the source checkout this package runs from, or None.

    When sktransfer is imported from a clone (``python examples/x.py`` or an
    editable install), the checkout's parent may hold the data sets in
    ``shared/data``; an installed wheel has no checkout, so no such folder.
    """
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / _CHECKOUT_MARKER).is_file():
        return None
    return os.fspath(checkout.parent / "shared" / "data")


def _candidate_data_homes(data_home=None):
    """Data folders that may hold a copy, in search order, without duplicates."""
    candidates = (
        data_home,
        os.environ.get(DATA_HOME_ENV),
        DEFAULT_DATA_HOME,
        _checkout_data_home(),
    )
    homes = []
    for candidate in candidates:
        if candidate is None or os.fspath(candidate) == "":
            continue
        home = get_data_home(candidate)
        if home not in homes:
            homes.append(home)
    return homes


def find_data_dir(*names: str, data_home: StrPath | None = None, required: bool = False) -> str | None:
    """Return the first data folder holding every data set folder in `names`.

    The folders searched, in order: `data_home`, the ``SKTRANSFER_DATA``
    environment variable, ``~/sktransfer_data`` (the order of
    :func:`get_data_home`), then ``../shared/data`` beside the source
    checkout sktransfer is imported from (only when it runs from a clone,
    recognised by its ``pyproject.toml``; this is where the project's own
    machines keep the data). Nothing is downloaded or created.

    Parameters
    ----------
    *names : str
        Names of sub-folders the data folder must hold, e.g.
        ``"hymenoptera", "flowers"``. With none, the first existing folder
        is returned.
    data_home : str or os.PathLike or None, default=None
        Folder searched first.
    required : bool, default=False
        Raise instead of returning None when no folder qualifies.

    Returns
    -------
    str or None
        The data folder (the parent of the `names` folders), or None when
        none qualifies and `required` is False.

    Raises
    ------
    FileNotFoundError
        When `required` is True and no folder qualifies; the message lists
        the folders searched and how to point sktransfer at a copy.
    TypeError
        If a name is not a string.

    Examples
    --------
    >>> import os, tempfile
    >>> home = tempfile.mkdtemp()
    >>> os.mkdir(os.path.join(home, "flowers"))
    >>> find_data_dir("flowers", data_home=home) == home
    True
    >>> find_data_dir("no-such-data-set", data_home=home) is None
    True
    """
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"data set names must be non-empty strings, got {name!r}")
    homes = _candidate_data_homes(data_home)
    for home in homes:
        if os.path.isdir(home) and all(os.path.isdir(os.path.join(home, n)) for n in names):
            return home
    if not required:
        return None
    wanted = " and ".join(f"{name}/" for name in names) or "a data folder"
    raise FileNotFoundError(
        f"no folder holding {wanted} found; searched: {', '.join(homes)}. "
        f"Set the environment variable {DATA_HOME_ENV} (or pass data_home=...) "
        "to the folder that holds them."
    )

"""The ants-vs-bees (hymenoptera) data set of the PyTorch transfer learning tutorial."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.utils import Bunch

from .._typing import StrPath
from ._base import DATA_HOME_ENV, _candidate_data_homes, get_data_home
from ._folder import load_image_folder

__all__ = ["HYMENOPTERA_URL", "fetch_hymenoptera"]

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"

# Accepted names of a copy inside a data folder: ours, then the folder name
# inside the tutorial's zip, so a plain unzip into the data folder works.
_COPY_FOLDER_NAMES = ("hymenoptera", "hymenoptera_data")
_ARCHIVE_FOLDER_NAME = "hymenoptera_data"
_SPLITS = ("train", "val")
_SUBSETS = (*_SPLITS, "all")
_DOWNLOAD_TIMEOUT_S = 60

_DESCR = """\
Hymenoptera (ants vs bees) image data set
-----------------------------------------

A small two-class subset of ImageNet used by the PyTorch transfer learning
tutorial: about 120 training and 75 validation JPEG photos per class.

=================  ==================================
Classes            2 (ants, bees)
Train images       244 (123 ants, 121 bees)
Validation images  153 (70 ants, 83 bees)
Features           RGB photos of varying size
=================  ==================================

The archive also holds train/ants/imageNotFound.gif, a placeholder that is
not a photo; it is skipped (as torchvision's ImageFolder does) with a warning.

Source: {url}
Loaded from: {root}
"""


def _is_copy(folder):
    return all(os.path.isdir(os.path.join(folder, split)) for split in _SPLITS)


def _find_copy(homes):
    for home in homes:
        for name in _COPY_FOLDER_NAMES:
            folder = os.path.join(home, name)
            if _is_copy(folder):
                return folder
    return None


def _download_file(url, destination):
    """Download `url` to the file `destination` (replaced in tests)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        with open(destination, "wb") as out:
            shutil.copyfileobj(response, out)


def _download_copy(data_home):
    """Download and unzip the archive into ``data_home/hymenoptera``.

    Everything happens in a hidden staging folder inside `data_home` and the
    result is moved into place with one rename, so an interrupted download
    never leaves a half-filled ``hymenoptera/`` that would later be taken for
    a complete copy.
    """
    os.makedirs(data_home, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".hymenoptera-download-", dir=data_home)
    try:
        archive = os.path.join(staging, "hymenoptera_data.zip")
        _download_file(HYMENOPTERA_URL, archive)
        extracted = os.path.join(staging, "extracted")
        with zipfile.ZipFile(archive) as zip_file:
            # zipfile strips absolute paths and ".." from member names.
            zip_file.extractall(extracted)
        unpacked = os.path.join(extracted, _ARCHIVE_FOLDER_NAME)
        if not _is_copy(unpacked):
            raise OSError(f"the archive has no {_ARCHIVE_FOLDER_NAME}/train and /val folders")
        target = os.path.join(data_home, _COPY_FOLDER_NAMES[0])
        try:
            os.rename(unpacked, target)
        except OSError:
            # Another process may have finished the same download first.
            if not _is_copy(target):
                raise
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _not_found_message(problem, homes, download_home):
    looked_in = ", ".join(os.path.join(h, name) for h in homes for name in _COPY_FOLDER_NAMES)
    lines = [
        f"the hymenoptera (ants vs bees) data set {problem}.",
        f"Looked for a copy in: {looked_in}.",
        "To fix this, do one of:",
        f"  - download {HYMENOPTERA_URL} and unzip it in {download_home} "
        f"(giving {os.path.join(download_home, _ARCHIVE_FOLDER_NAME, 'train')} and "
        f"{os.path.join(download_home, _ARCHIVE_FOLDER_NAME, 'val')}), or",
        f"  - set the environment variable {DATA_HOME_ENV}, or pass data_home=..., "
        "to a folder that holds hymenoptera/ (with train/ and val/ inside).",
    ]
    for home in homes:
        if _is_copy(home):
            lines.append(
                f"Note: {home} itself holds train/ and val/; point {DATA_HOME_ENV} or "
                "data_home at the folder that contains it, and name it hymenoptera/."
            )
    return "\n".join(lines)


def fetch_hymenoptera(
    *,
    data_home: StrPath | None = None,
    subset: Literal["train", "val", "all"] = "train",
    download_if_missing: bool = True,
    return_X_y: bool = False,
) -> Bunch | tuple[list[str], NDArray[np.str_]]:
    """Load the ants-vs-bees image data set (paths and labels).

    A copy is searched for in the folders :func:`find_data_dir` searches:
    `data_home`, the folder named by the ``SKTRANSFER_DATA`` environment
    variable, ``~/sktransfer_data``, then ``../shared/data`` beside a source
    checkout.
    A copy is a sub-folder ``hymenoptera/`` (or ``hymenoptera_data/``, the
    folder inside the PyTorch tutorial's zip) holding ``train/`` and ``val/``,
    each with ``ants/`` and ``bees/``. When there is none and
    `download_if_missing` is True, the zip is downloaded from
    :data:`HYMENOPTERA_URL` into ``get_data_home(data_home)/hymenoptera``.

    =================  ==========================
    Classes            2 (ants, bees)
    Samples            244 train, 153 val
    Features           paths to RGB JPEG photos
    =================  ==========================

    Parameters
    ----------
    data_home : str or os.PathLike or None, default=None
        Folder to search first and to download into. None: the
        ``SKTRANSFER_DATA`` variable, else ``~/sktransfer_data``.
    subset : {"train", "val", "all"}, default="train"
        Which split to return; "all" is train followed by val.
    download_if_missing : bool, default=True
        Download the data when no copy is found. If False, a missing copy
        raises an OSError.
    return_X_y : bool, default=False
        Return ``(paths, target)`` instead of a Bunch.

    Returns
    -------
    data : sklearn.utils.Bunch
        With ``paths`` (list of str, image file paths), ``target`` (numpy
        array of class-name strings), ``target_names`` (sorted class names),
        ``subset``, ``DESCR``, and for ``subset="all"`` ``split`` (array of
        "train"/"val" per image).
    (paths, target) : tuple
        When `return_X_y` is True.

    Raises
    ------
    OSError
        If no copy is found and it cannot (or may not) be downloaded; the
        message says where to download and unzip the data by hand.
    ValueError
        If `subset` is not one of the values above.

    Warns
    -----
    UserWarning
        The training split holds one ``.gif`` placeholder that is skipped.

    Examples
    --------
    >>> from sktransfer.datasets import fetch_hymenoptera
    >>> data = fetch_hymenoptera(subset="val")  # doctest: +SKIP
    >>> len(data.paths), data.target_names  # doctest: +SKIP
    (153, array(['ants', 'bees'], dtype='<U4'))
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}")
    homes = _candidate_data_homes(data_home)
    root = _find_copy(homes)
    if root is None:
        download_home = get_data_home(data_home)
        if not download_if_missing:
            raise OSError(_not_found_message("was not found (download_if_missing=False)", homes, download_home))
        try:
            root = _download_copy(download_home)
        except (OSError, zipfile.BadZipFile) as exc:
            problem = f"was not found and could not be downloaded from {HYMENOPTERA_URL} ({type(exc).__name__}: {exc})"
            raise OSError(_not_found_message(problem, homes, download_home)) from exc

    splits = _SPLITS if subset == "all" else (subset,)
    paths, targets, split_of_each, class_names = [], [], [], set()
    for split in splits:
        split_paths, split_target, split_classes = load_image_folder(os.path.join(root, split), return_class_names=True)
        paths.extend(split_paths)
        targets.append(split_target)
        split_of_each.extend([split] * len(split_paths))
        class_names.update(split_classes)
    target = np.concatenate(targets)

    if return_X_y:
        return paths, target
    data = Bunch(
        paths=paths,
        target=target,
        target_names=np.asarray(sorted(class_names), dtype=str),
        subset=subset,
        DESCR=_DESCR.format(url=HYMENOPTERA_URL, root=root),
    )
    if subset == "all":
        data.split = np.asarray(split_of_each, dtype=str)
    return data

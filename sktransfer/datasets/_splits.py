"""Folders split into ``train``/``val``/``test`` sub-folders, each laid out as ``split/class_name/image.ext``.

Data sets are often shipped already split (``train/`` and ``val/``,
``training_set/`` and ``test_set/``, Kaggle's ``train``/``valid``/``test``).
Read as one class folder, such a root would give classes named after the
splits, and a classifier that learns to tell the splits apart; so
:func:`load_image_folder` warns when its top-level folders have split names,
and :func:`load_image_splits` reads them as the splits they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .._typing import StrPath
from ._folder import load_image_folder
from ._split_names import SPLIT_NAMES, split_of

__all__ = ["load_image_splits"]


def _top_level_folders(root):
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def load_image_splits(
    path: StrPath, *, extensions: str | Sequence[str] | None = None
) -> dict[str, tuple[list[str], NDArray[np.str_]]]:
    """Read a folder split into ``train``/``val``/``test`` sub-folders of class folders.

    Each split folder is read by :func:`load_image_folder` (its sub-folders
    are the classes). Split folders are recognised by name,
    case-insensitively: ``train``, ``training``, ``training_set``,
    ``train_set``...; ``val``, ``valid``, ``validation``, ``dev``...;
    ``test``, ``testing``, ``test_set``... (:data:`SPLIT_NAMES`).

    Parameters
    ----------
    path : str or os.PathLike
        The root folder, holding the split folders.
    extensions : str or sequence of str or None, default=None
        As for :func:`load_image_folder`.

    Returns
    -------
    dict
        Split name (``"train"``, ``"val"``, ``"test"``; only those found, in
        that order) to ``(paths, labels)``.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    NotADirectoryError
        If `path` is not a folder.
    ValueError
        If `path` holds no training split folder, two folders of one split
        (``val`` and ``valid``), folders that are not splits beside the
        splits, or a class in another split that the training split lacks.

    Examples
    --------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("training_set/cats/a.jpg", "training_set/dogs/b.jpg", "test_set/cats/c.jpg"):
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    ...     open(os.path.join(root, name), "wb").close()
    >>> splits = load_image_splits(root)
    >>> list(splits), splits["test"][1].tolist()
    (['train', 'test'], ['cats'])
    """
    root = os.path.expanduser(os.fspath(path))
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a folder; expected a folder with train/ and val/ or test/ folders")
    folders = {}
    others = []
    for name in _top_level_folders(root):
        split = split_of(name)
        if split is None:
            others.append(name)
        elif split in folders:
            raise ValueError(f"{root} holds two {split} folders, {folders[split]!r} and {name!r}; keep one")
        else:
            folders[split] = name
    if "train" not in folders:
        found = f" (it holds {', '.join(map(repr, folders.values()))})" if folders else ""
        raise ValueError(
            f"no training split folder (train/, training_set/...) in {root}{found}; a folder of class "
            "folders without splits is read by load_image_folder"
        )
    if others:
        raise ValueError(
            f"{root} holds split folders ({', '.join(map(repr, folders.values()))}) and other folders "
            f"({', '.join(map(repr, others))}); move the others into a split or out of {root}"
        )
    splits = {}
    for split in SPLIT_NAMES:
        if split in folders:
            paths, labels = load_image_folder(os.path.join(root, folders[split]), extensions=extensions)
            splits[split] = (paths, labels)
    known = set(splits["train"][1].tolist())
    for split, (_, labels) in splits.items():
        unknown = sorted(set(labels.tolist()) - known)
        if unknown:
            raise ValueError(
                f"class folder(s) {unknown} of {os.path.join(root, folders[split])} are not in the training "
                f"split {os.path.join(root, folders['train'])}; a classifier cannot predict a class it never saw"
            )
    return splits

"""The folder names that stand for a data split (``train``, ``val``, ``test``) rather than a class."""

from __future__ import annotations

__all__ = ["SPLIT_NAMES", "split_of"]

#: Folder names read as each split (compared case-insensitively, with ``-``
#: and spaces read as ``_``).
SPLIT_NAMES = {
    "train": ("train", "training", "train_set", "training_set", "trainset", "train_data", "training_data"),
    "val": ("val", "valid", "validation", "val_set", "valid_set", "validation_set", "dev", "development"),
    "test": ("test", "testing", "test_set", "testset", "test_data", "testing_data"),
}


def split_of(folder_name: str) -> str | None:
    """The split (``"train"``, ``"val"`` or ``"test"``) a folder name stands for, or None.

    Parameters
    ----------
    folder_name : str
        A folder's name (not its path).

    Returns
    -------
    str or None

    Examples
    --------
    >>> split_of("training_set"), split_of("Valid"), split_of("cats")
    ('train', 'val', None)
    """
    normalised = folder_name.strip().lower().replace("-", "_").replace(" ", "_")
    for split, names in SPLIT_NAMES.items():
        if normalised in names:
            return split
    return None

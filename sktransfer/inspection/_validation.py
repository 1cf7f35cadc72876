"""Checks the displays share: labels, lengths, counts, fitted estimators."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np


def as_labels(values: Any, name: str) -> np.ndarray:
    """`values` as a 1-D array of labels, or a ValueError naming `name` and its shape."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per image), got an array of shape {array.shape}")
    return array


def check_same_length(reference: tuple[str, int], **others: int | None) -> None:
    """A ValueError naming the first input whose length differs from `reference`'s."""
    ref_name, ref_length = reference
    for name, length in others.items():
        if length is not None and length != ref_length:
            raise ValueError(f"{name} has {length} entries but {ref_name} has {ref_length}: give one per image")


def check_count(value: Any, name: str) -> int:
    """`value` as a positive int, or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)

"""The fit memo: tensors that fits on the same image files share.

A grid search fits many clones of one fine-tuner on the same folds: they
decode the same images and, while the network holds its pretrained weights,
compute the same frozen-prefix activations. :data:`FIT_MEMO` keeps them once
per process, keyed by what makes them equal (the image files' paths, sizes
and times, :func:`paths_key`; the pretrained weights and entry position for
activations). It is bounded in bytes and releases what no fit used
recently; see :func:`set_fit_memo_limit`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

import torch

_DEFAULT_MEMO_BYTES = 1024**3
_DEFAULT_MEMO_IDLE_SECONDS = 120.0


def tensor_nbytes(value) -> int:
    """Bytes of a tensor's elements (0 for anything else)."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.numel()
    return 0


class FitMemo:
    """Process-wide LRU of tensors that fits on the same images can share.

    Entries are keyed by the images (their paths, sizes and times) and, for
    activations, by the pretrained weights and the entry position, so they are
    only shared between fits that would compute exactly the same tensors.
    Stored tensors are never modified in place.

    Two bounds keep it from holding memory nobody needs: the entries' total
    size stays under ``max_bytes`` (least recently used first out; an entry
    larger than the bound is not kept), and entries no fit has used for
    ``idle_seconds`` are dropped by a daemon timer, so the memory of a grid
    search is returned shortly after the search ends.

    Parameters
    ----------
    max_bytes : int
        0 disables sharing.
    idle_seconds : float
    """

    def __init__(self, max_bytes: int = _DEFAULT_MEMO_BYTES, idle_seconds: float = _DEFAULT_MEMO_IDLE_SECONDS) -> None:
        self.max_bytes = int(max_bytes)
        self.idle_seconds = float(idle_seconds)
        self._entries = OrderedDict()  # key -> (value, nbytes, last use)
        self._lock = threading.Lock()
        self._timer = None
        self.hits = 0

    @property
    def nbytes(self) -> int:
        """Total size of the stored tensors."""
        with self._lock:
            return sum(size for _, size, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable | None) -> object | None:
        """The stored value, or None (a None key is never stored)."""
        if key is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries[key] = (entry[0], entry[1], time.monotonic())
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: Hashable | None, value: object) -> None:
        """Store ``value`` under ``key`` if it fits in ``max_bytes``."""
        size = tensor_nbytes(value)
        if key is None or size > self.max_bytes:
            return
        with self._lock:
            self._entries[key] = (value, size, time.monotonic())
            self._entries.move_to_end(key)
            self._evict()
            self._arm_timer()

    def set_max_bytes(self, max_bytes: int) -> None:
        """Change the bound, dropping the least recently used entries beyond it."""
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()

    def _evict(self):
        # Called with the lock held.
        total = sum(size for _, size, _ in self._entries.values())
        while total > self.max_bytes:
            _, (_, dropped, _) = self._entries.popitem(last=False)
            total -= dropped

    def clear(self) -> None:
        """Drop every entry and reset the hit count."""
        with self._lock:
            self._entries.clear()
            self.hits = 0

    def release_idle(self) -> int:
        """Drop the entries unused for ``idle_seconds``; returns how many were dropped."""
        with self._lock:
            self._timer = None
            limit = time.monotonic() - self.idle_seconds
            stale = [key for key, (_, _, used) in self._entries.items() if used <= limit]
            for key in stale:
                del self._entries[key]
            self._arm_timer()
            return len(stale)

    def _arm_timer(self):
        # Called with the lock held. One timer at a time, and only while
        # something is stored; a daemon thread never keeps the process alive.
        if self._timer is not None or not self._entries:
            return
        oldest = min(used for _, _, used in self._entries.values())
        delay = max(0.0, oldest + self.idle_seconds - time.monotonic()) + 0.01
        self._timer = threading.Timer(delay, self.release_idle)
        self._timer.daemon = True
        self._timer.start()


def _env_float(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be a number") from None


FIT_MEMO = FitMemo(
    max_bytes=int(_env_float("SKTRANSFER_FIT_MEMO_BYTES", _DEFAULT_MEMO_BYTES)),
    idle_seconds=_env_float("SKTRANSFER_FIT_MEMO_IDLE_SECONDS", _DEFAULT_MEMO_IDLE_SECONDS),
)


def set_fit_memo_limit(max_bytes: int | None = None, idle_seconds: float | None = None) -> tuple[int, float]:
    """Bound the memory fits share: total bytes, and how long unused entries stay.

    :class:`~sktransfer.FineTuneClassifier` fits on the same image files (the
    clones of a grid search) share the decoded images and the pretrained
    prefix's activations through one process-wide memo. It holds at most
    ``max_bytes`` (default 1 GiB, or the ``SKTRANSFER_FIT_MEMO_BYTES``
    environment variable) and drops what no fit used for ``idle_seconds``
    (default 120, or ``SKTRANSFER_FIT_MEMO_IDLE_SECONDS``). Shrinking the
    bound drops entries at once.

    Parameters
    ----------
    max_bytes : int or None
        New bound; 0 disables sharing; None keeps the current one.
    idle_seconds : float or None
        New idle time; None keeps the current one.

    Returns
    -------
    tuple of (int, float)
        The previous ``(max_bytes, idle_seconds)``.

    Examples
    --------
    >>> from sktransfer.finetune import set_fit_memo_limit
    >>> previous = set_fit_memo_limit(256 * 1024**2, idle_seconds=30)
    >>> _ = set_fit_memo_limit(*previous)
    """
    previous = (FIT_MEMO.max_bytes, FIT_MEMO.idle_seconds)
    if max_bytes is not None:
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
        FIT_MEMO.set_max_bytes(max_bytes)
    if idle_seconds is not None:
        if float(idle_seconds) < 0:
            raise ValueError(f"idle_seconds must be >= 0, got {idle_seconds!r}")
        FIT_MEMO.idle_seconds = float(idle_seconds)
    return previous


def paths_key(items: list) -> tuple | None:
    """A hashable identity for a list of image paths (None if any item is not a path)."""
    if not all(isinstance(i, (str, os.PathLike)) for i in items):
        return None
    files = [os.fspath(i) for i in items]
    # Size and mtime: a file rewritten between fits is not the same image.
    try:
        stats = [(st.st_size, st.st_mtime_ns) for st in map(os.stat, files)]
    except OSError:
        return None
    return tuple(zip(files, stats))

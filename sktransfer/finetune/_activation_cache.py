"""Frozen-prefix activations: where training batches enter the network.

Without augmentation and with frozen groups in eval mode, nothing random
happens before the first trainable layer group, so its input is the same
every epoch: :class:`ActivationCache` computes it once per fit and the
training batches enter the network there.

This module is the sole owner of two pieces of state that must agree:

* the entry position: :func:`enter` sets, together, the position the
  network's ``forward`` starts from (``FineTuneNetwork.input_start``) and the
  cached values the training datasets serve (``ActivationCache.active``);
  :func:`leave` resets both;
* whether a network's prefix still holds its pretrained weights (only then
  are its activations those of a fresh clone and shareable through the fit
  memo): :func:`mark_pretrained` when a network is built, cleared by
  :func:`leave` once it has trained.

:data:`FIT_MEMO` shares decoded images and pretrained activations between
fits on the same image files (a grid search fits many clones on the same
folds). It is bounded in bytes and releases what no fit used recently; see
:func:`set_fit_memo_limit`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager

import torch
from torch import nn

# Activations are cached only while they fit in this many bytes; beyond it the
# prefix is recomputed every epoch (slower, never out of memory).
MAX_CACHE_BYTES = 2 * 1024**3

_DEFAULT_MEMO_BYTES = 1024**3
_DEFAULT_MEMO_IDLE_SECONDS = 120.0


def _nbytes(value):
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

    def __init__(self, max_bytes=_DEFAULT_MEMO_BYTES, idle_seconds=_DEFAULT_MEMO_IDLE_SECONDS):
        self.max_bytes = int(max_bytes)
        self.idle_seconds = float(idle_seconds)
        self._entries = OrderedDict()  # key -> (value, nbytes, last use)
        self._lock = threading.Lock()
        self._timer = None
        self.hits = 0

    @property
    def nbytes(self):
        """Total size of the stored tensors."""
        with self._lock:
            return sum(size for _, size, _ in self._entries.values())

    def __len__(self):
        return len(self._entries)

    def get(self, key):
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

    def put(self, key, value):
        """Store ``value`` under ``key`` if it fits in ``max_bytes``."""
        size = _nbytes(value)
        if key is None or size > self.max_bytes:
            return
        with self._lock:
            self._entries[key] = (value, size, time.monotonic())
            self._entries.move_to_end(key)
            self._evict()
            self._arm_timer()

    def set_max_bytes(self, max_bytes):
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

    def clear(self):
        """Drop every entry and reset the hit count."""
        with self._lock:
            self._entries.clear()
            self.hits = 0

    def release_idle(self):
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


def set_fit_memo_limit(max_bytes=None, idle_seconds=None):
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


def paths_key(items):
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


# Networks whose frozen prefix still holds its pretrained weights. Weak: a
# network forgotten by its estimator is forgotten here; a network restored from
# a pickle is not in it (conservatively, nothing shared).
_PRETRAINED = weakref.WeakSet()


def mark_pretrained(network):
    """Record that ``network`` was just built from its pretrained weights."""
    _PRETRAINED.add(network)


def shared_key(network, network_identity, items):
    """What fits of ``network`` on ``items`` may share through :data:`FIT_MEMO`, or None.

    Only a network still holding its pretrained weights computes the same
    prefix activations as a fresh clone; named weights (``network_identity()``,
    a callable as it may hash a file) and image paths make that identity
    checkable.
    """
    if network not in _PRETRAINED:
        return None
    identity = network_identity()
    images = None if identity is None else paths_key(items)
    return None if images is None else (identity, images)


class ActivationCache:
    """Frozen-prefix outputs for every stored image, keyed by entry position.

    ``values[start]`` is what the network receives at ``start`` (see
    ``FineTuneNetwork.input_start``) for each stored image; ``active`` is the
    position the training batches currently come from (None: images), set
    only by :func:`enter` together with the network's own.

    Parameters
    ----------
    memo_key : hashable or None
        See :func:`shared_key`; None shares nothing with other fits.
    """

    def __init__(self, memo_key=None):
        self.values = {}
        self.active = None
        self.memo_key = memo_key

    def clear(self):
        self.values, self.active = {}, None

    @torch.no_grad()
    def fill(
        self,
        network: nn.Module,
        images,
        start: str,
        *,
        device: torch.device | str,
        batch_size: int,
        source: str | None = None,
        fast=None,
    ) -> bool:
        """Cache the input at ``start``, computed from images or from cached ``source``.

        Computing from a cached later-than-images position (e.g. the embedding
        from the phase-2 activations) runs only the part in between. From
        images, the prefix runs on ``fast``'s engine when it has one (a
        ``_fast_prefix.FastPrefix``; None: PyTorch). Returns False, caching
        nothing, when it would exceed :data:`MAX_CACHE_BYTES`.
        """
        if start in self.values:
            return True
        # Engines agree only to rounding: fits share what the same engine computed.
        engine = "torch" if fast is None else fast.engine
        shared = FIT_MEMO.get(self._memo_key(start, engine))
        if shared is not None:
            self.values[start] = shared
            return True
        with _evaluating(network):
            prefix = self._prefix_pass(network, start, source, fast)
            outs = prefix.run(images, device=device, batch_size=batch_size)
        if outs is None:
            return False
        self.values[start] = outs[-1]
        FIT_MEMO.put(self._memo_key(start, engine), outs[-1])
        for stop, out in zip(prefix.stops[:-1], outs):
            if _nbytes(out) <= MAX_CACHE_BYTES // 8:
                FIT_MEMO.put(self._memo_key(stop, engine), out)
        return True

    def _memo_key(self, position, engine):
        return None if self.memo_key is None else ("activations", self.memo_key, position, engine)

    def _prefix_pass(self, network, start, source, fast):
        """The pass to ``start``: from cached ``source`` when it is cached, else from images.

        On the way to ``start`` it also keeps the inputs of the few groups
        just before it, for other fits of a grid: a fit unfreezing one group
        more starts there. (Small tensors: late feature maps.) From images,
        a network still holding its pretrained weights runs on ``fast``'s
        engine: its graph is exported once and reused from the disk cache by
        every later fit.
        """
        source = source if source is not None and source in self.values else None
        order = network.positions()
        on_the_way = []
        if self.memo_key is not None and FIT_MEMO.max_bytes > 0:
            between = order[order.index(source) + 1 : order.index(start)]
            on_the_way = [p for p in between if p in network.backbone.groups][-3:]
        stops = [*on_the_way, start]
        if source is not None:
            return PrefixPass(network, stops, source=source, source_values=self.values[source])
        runner = fast.runner(network, stops) if fast is not None and network in _PRETRAINED else None
        return PrefixPass(network, stops, runner=runner)


@contextmanager
def _evaluating(network):
    """``network`` in eval mode within (frozen layers as in prediction), its mode restored after."""
    was_training = network.training
    network.eval()
    try:
        yield
    finally:
        network.train(was_training)


class PrefixPass:
    """The network from ``source`` (None: uint8 images) to each of ``stops``, over every stored image.

    Parameters
    ----------
    network : FineTuneNetwork
    stops : list of str
        Positions of ``network.positions()`` after ``source``, in order.
    source : str or None, default=None
        Where the inputs enter.
    source_values : Tensor or None, default=None
        The cached inputs at ``source`` (when ``source`` is not None).
    runner : callable or None, default=None
        Runs the whole pass from images on a graph engine (a
        ``PrefixRunner``); None: PyTorch.
    """

    def __init__(self, network, stops, *, source=None, source_values=None, runner=None):
        self.network = network
        self.stops = list(stops)
        self.source = source
        self.source_values = source_values
        self.runner = runner

    def inputs(self, images, lo: int, hi: int, device) -> torch.Tensor:
        """The inputs of stored images ``lo:hi`` at ``source``, on ``device``."""
        if self.source_values is not None:
            return self.source_values[lo:hi].to(device)
        return torch.stack([images.eval_item(i) for i in range(lo, hi)]).to(device)

    def outputs(self, x: torch.Tensor) -> list:
        """The values at each stop for the batch ``x``."""
        if self.runner is not None:
            return self.runner(x)
        outs, previous = [], self.source
        for stop in self.stops:
            x = self.network.forward_between(x, previous, stop)
            outs.append(x)
            previous = stop
        return outs

    def run(self, images, *, device, batch_size: int) -> list | None:
        """The values at each stop for every stored image, on the CPU, or None beyond :data:`MAX_CACHE_BYTES`.

        The first image alone tells the output shapes (and whether the last
        fits the bound) before anything is allocated.
        """
        n = len(images)
        firsts = self.outputs(self.inputs(images, 0, 1, device))
        if _nbytes(firsts[-1]) * n > MAX_CACHE_BYTES:
            return None
        outs = [torch.empty((n, *first.shape[1:]), dtype=first.dtype) for first in firsts]
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            for out, value in zip(outs, self.outputs(self.inputs(images, lo, hi, device))):
                out[lo:hi] = value.cpu()
        return outs


def route(network, stores, start, *, later=None, enabled=True, device, batch_size, fast=None):
    """Cache the input at ``start`` for every store and make training batches enter there.

    ``later`` (phase 1 only) is where phase 2 will enter: it is cached first
    and ``start`` derived from it, so the frozen prefix runs once per fit.
    When caching is off, impossible (``start`` None: the whole trunk trains)
    or too large, the caches are emptied and batches enter as images.

    Parameters
    ----------
    network : FineTuneNetwork
    stores : list of DecodedImages
    start, later : str or None
        Positions of ``network.positions()``.
    enabled : bool
        False: never cache (augmentation, BatchNorm in train mode).
    device : torch.device
    batch_size : int
    fast : FastPrefix or None
        The engine of the pass from images (None: PyTorch).

    Returns
    -------
    bool
        Whether batches now come from cached activations.
    """
    cached = bool(stores) and enabled and start is not None
    compute = {"device": device, "batch_size": batch_size, "fast": fast}
    for store in stores:
        if not cached:
            break
        if later not in (None, start):
            store.cache.fill(network, store, later, **compute)
        cached = store.cache.fill(network, store, start, source=later, **compute)
    for store in stores:
        if not cached:
            store.cache.clear()
    enter(network, stores, start if cached else None)
    return cached


def enter(network, stores, start):
    """Make training batches enter ``network`` at ``start`` (None: images), for every store."""
    for store in stores:
        store.cache.active = start
    network.input_start = start


def leave(network):
    """Back to image input after training; the network's prefix is no longer the pretrained one."""
    network.input_start = None
    _PRETRAINED.discard(network)

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

Pretrained activations are shared between fits on the same image files
through :data:`._fit_memo.FIT_MEMO`, under the key :func:`shared_key`
gives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from contextlib import contextmanager

import torch
from torch import nn

from ._fit_memo import FIT_MEMO, paths_key, tensor_nbytes

# Activations are cached only while they fit in this many bytes; beyond it the
# prefix is recomputed every epoch (slower, never out of memory).
MAX_CACHE_BYTES = 2 * 1024**3


# Networks whose frozen prefix still holds its pretrained weights. Weak: a
# network forgotten by its estimator is forgotten here; a network restored from
# a pickle is not in it (conservatively, nothing shared).
_PRETRAINED = weakref.WeakSet()


def mark_pretrained(network: nn.Module) -> None:
    """Record that ``network`` was just built from its pretrained weights."""
    _PRETRAINED.add(network)


def shared_key(network: nn.Module, network_identity: Callable, items: list) -> tuple | None:
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

    def __init__(self, memo_key: Hashable | None = None) -> None:
        self.values = {}
        self.active = None
        self.memo_key = memo_key

    def clear(self) -> None:
        """Forget every cached value; batches enter as images."""
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
            if tensor_nbytes(out) <= MAX_CACHE_BYTES // 8:
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

    def __init__(
        self,
        network: nn.Module,
        stops: list,
        *,
        source: str | None = None,
        source_values: torch.Tensor | None = None,
        runner: Callable | None = None,
    ) -> None:
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
        if tensor_nbytes(firsts[-1]) * n > MAX_CACHE_BYTES:
            return None
        outs = [torch.empty((n, *first.shape[1:]), dtype=first.dtype) for first in firsts]
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            for out, value in zip(outs, self.outputs(self.inputs(images, lo, hi, device))):
                out[lo:hi] = value.cpu()
        return outs


def route(
    network: nn.Module,
    stores: list,
    start: str | None,
    *,
    later: str | None = None,
    enabled: bool = True,
    device: torch.device | str,
    batch_size: int,
    fast=None,
) -> bool:
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


def enter(network: nn.Module, stores: list, start: str | None) -> None:
    """Make training batches enter ``network`` at ``start`` (None: images), for every store."""
    for store in stores:
        store.cache.active = start
    network.input_start = start


def leave(network: nn.Module) -> None:
    """Back to image input after training; the network's prefix is no longer the pretrained one."""
    network.input_start = None
    _PRETRAINED.discard(network)

"""Decode images into uint8 batches, overlapping decoding with compute.

Decoding JPEGs and resizing them in PIL releases the GIL, so a small thread
pool decodes the next batches while the network runs on the current one.
Threads rather than processes: no pickling of images or of the transform, no
start-up cost per call, and it works the same from notebooks and scripts.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import torch

from ._decode import ImageLoadError, describe_source, load_image


def default_num_workers():
    """Decoding threads when ``num_workers="auto"``: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def resolve_num_workers(num_workers):
    return default_num_workers() if num_workers == "auto" else int(num_workers)


def item_source(item, index, input_name="X"):
    """How errors name an item: its path, or e.g. ``X[3] (PIL image)``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return describe_source(item, index, input_name=input_name)


def _decode_safe(item, index, transform, draft_size, input_name, on_error):
    """Decode and transform one item; an unreadable one raises, or returns its error."""
    try:
        return transform(load_image(item, source=item_source(item, index, input_name), draft_size=draft_size))
    except ImageLoadError as exc:
        if on_error == "raise":
            raise
        return exc


def _stack(results):
    """Stack decoded tensors, black where decoding failed; None when all failed."""
    good = [r for r in results if not isinstance(r, ImageLoadError)]
    if not good:
        return None
    filler = torch.zeros_like(good[0])
    return torch.stack([filler if isinstance(r, ImageLoadError) else r for r in results])


class BatchDecoder:
    """Iterate over uint8 image batches, decoding ahead in worker threads.

    Parameters
    ----------
    items : list
        Validated image items (see ``check_images``).
    transform : callable
        RGB PIL image -> uint8 CHW tensor of a fixed size.
    batch_size : int
    num_workers : int
        Decoding threads; 0 decodes in the calling thread.
    on_error : {"raise", "nan"}
        ``"raise"`` re-raises the first unreadable image's error;
        ``"nan"`` substitutes a black image and reports the failure.
    draft_size : tuple or None
        Passed to ``load_image`` (JPEG draft-mode decoding).
    input_name : str

    Yields
    ------
    start : int
        Index of the batch's first item.
    batch : torch.Tensor
        uint8 tensor (b, 3, H, W).
    failures : list of (int, ImageLoadError)
        Items of this batch that could not be read (``on_error="nan"``).
    """

    def __init__(self, items, transform, *, batch_size, num_workers=0, on_error="raise",
                 draft_size=None, input_name="X"):
        self.items = items
        self.transform = transform
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.on_error = on_error
        self.draft_size = draft_size
        self.input_name = input_name

    def _decode_safe(self, index):
        return _decode_safe(self.items[index], index, self.transform, self.draft_size, self.input_name,
                            self.on_error)

    def _collate(self, start, results):
        failures = [(start + i, r) for i, r in enumerate(results) if isinstance(r, ImageLoadError)]
        return start, _stack(results), failures

    def __iter__(self):
        starts = range(0, len(self.items), self.batch_size)
        if self.num_workers <= 0:
            for s in starts:
                stop = min(s + self.batch_size, len(self.items))
                yield self._collate(s, [self._decode_safe(i) for i in range(s, stop)])
            return
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="sktransfer-decode") as pool:
            pending = deque()
            # Two batches in flight: one being collated, one being decoded.
            ahead = 2
            it = iter(starts)
            for s in it:
                stop = min(s + self.batch_size, len(self.items))
                pending.append((s, [pool.submit(self._decode_safe, i) for i in range(s, stop)]))
                if len(pending) >= ahead:
                    break
            while pending:
                s, futures = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    stop = min(nxt + self.batch_size, len(self.items))
                    pending.append((nxt, [pool.submit(self._decode_safe, i) for i in range(nxt, stop)]))
                try:
                    results = [f.result() for f in futures]
                except BaseException:
                    for _, fs in pending:
                        for f in fs:
                            f.cancel()
                    raise
                yield self._collate(s, results)


def decode_all(items, transform, *, num_workers=0, on_error="raise", draft_size=None, input_name="X",
               stack=True):
    """Decode every item at once, in ``num_workers`` threads.

    Returns ``(decoded, failures)``: with ``stack`` a uint8 tensor (n, 3, H, W)
    (black images where decoding failed), else the list of ``transform``
    outputs (None where it failed); ``failures`` lists (index, ImageLoadError).
    """
    def decode(index):
        return _decode_safe(items[index], index, transform, draft_size, input_name, on_error)

    if num_workers > 0 and len(items) > 1:
        with ThreadPoolExecutor(num_workers, thread_name_prefix="sktransfer-decode") as pool:
            results = list(pool.map(decode, range(len(items))))
    else:
        results = [decode(i) for i in range(len(items))]
    failures = [(i, r) for i, r in enumerate(results) if isinstance(r, ImageLoadError)]
    if not stack:
        return [None if isinstance(r, ImageLoadError) else r for r in results], failures
    batch = _stack(results)
    if batch is None:
        raise failures[0][1]
    return batch, failures

"""Decode images into uint8 batches, overlapping decoding with compute.

Decoding JPEGs and resizing them in PIL releases the GIL, so a small thread
pool decodes the next batches while the network runs on the current one.
Threads rather than processes: no pickling of images or of the transform, no
start-up cost per call, and it works the same from notebooks and scripts.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import torch
from PIL import Image

from .._typing import ImageItem
from ._decode import describe_source, load_image, load_pixels, unexpected_error
from ._errors import ImageLoadError


def default_num_workers() -> int:
    """Decoding threads when ``num_workers="auto"``: one per compute thread, at most 4.

    The compute threads are torch's (``torch.get_num_threads()``, one per
    core unless set), the budget a dask worker or Ray actor sets for its
    share of the machine, so decoding stays within that share too.
    """
    return max(1, min(4, torch.get_num_threads(), os.cpu_count() or 1))


def resolve_num_workers(num_workers: int | Literal["auto"]) -> int:
    return default_num_workers() if num_workers == "auto" else int(num_workers)


def item_source(item: ImageItem | None, index: int, input_name: str = "X") -> str:
    """How errors name an item: its path, or e.g. ``X[3] (PIL image)``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return describe_source(item, index, input_name=input_name)


def decode_item_or_error(
    item: ImageItem | None,
    index: int,
    transform: Callable[[Image.Image | torch.Tensor], Any],
    draft_size: tuple[int, int] | None,
    input_name: str,
    on_error: Literal["raise", "nan"],
    source: str | None = None,
) -> Any:
    """Decode and transform one item; returns the tensor, or its ImageLoadError.

    Errors name the item by `source`, by default by :func:`item_source`.

    With ``on_error="raise"`` the error is raised instead of returned. Any
    other exception from decoding or from ``transform`` becomes an
    ImageLoadError naming the item too (see ``unexpected_error``), so
    ``on_error`` applies to it. MemoryError and KeyboardInterrupt pass
    through untouched.
    """
    if source is None:
        source = item_source(item, index, input_name)
    # A transform that takes tensors gets JPEGs decoded outside the GIL.
    load = load_pixels if getattr(transform, "takes_tensors", False) else load_image
    try:
        return transform(load(item, source=source, draft_size=draft_size))
    except ImageLoadError as exc:
        error = exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 -- see the docstring
        error = unexpected_error(source, exc)
    if on_error == "raise":
        raise error
    return error


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
    sources : sequence of str or None, default=None
        How errors name each item, when not by :func:`item_source` (e.g.
        items read into bytes ahead of decoding, named by their paths).

    Yields
    ------
    start : int
        Index of the batch's first item.
    batch : torch.Tensor
        uint8 tensor (b, 3, H, W).
    failures : list of (int, ImageLoadError)
        Items of this batch that could not be read (``on_error="nan"``).
    """

    def __init__(
        self,
        items: Sequence[ImageItem | None],
        transform: Callable[[Image.Image | torch.Tensor], torch.Tensor],
        *,
        batch_size: int,
        num_workers: int = 0,
        on_error: Literal["raise", "nan"] = "raise",
        draft_size: tuple[int, int] | None = None,
        input_name: str = "X",
        sources: Sequence[str] | None = None,
    ) -> None:
        self.items = items
        self.sources = sources
        self.transform = transform
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.on_error = on_error
        self.draft_size = draft_size
        self.input_name = input_name

    def _decode_index(self, index):
        source = None if self.sources is None else self.sources[index]
        return decode_item_or_error(
            self.items[index], index, self.transform, self.draft_size, self.input_name, self.on_error, source
        )

    def _collate(self, start, results):
        failures = [(start + i, r) for i, r in enumerate(results) if isinstance(r, ImageLoadError)]
        return start, _stack(results), failures

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor | None, list[tuple[int, ImageLoadError]]]]:
        starts = range(0, len(self.items), self.batch_size)
        if self.num_workers <= 0:
            for s in starts:
                stop = min(s + self.batch_size, len(self.items))
                yield self._collate(s, [self._decode_index(i) for i in range(s, stop)])
            return
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="sktransfer-decode")
        try:
            yield from self._iter_threaded(pool, starts)
        finally:
            # On an error, or when the consumer stops early (generator
            # closed), queued decodes are cancelled rather than run to
            # completion; running ones finish before this returns, so no
            # worker thread outlives the iteration.
            pool.shutdown(wait=True, cancel_futures=True)

    def _submit_batch(self, pool, start):
        stop = min(start + self.batch_size, len(self.items))
        return start, [pool.submit(self._decode_index, i) for i in range(start, stop)]

    def _iter_threaded(self, pool, starts):
        # Two batches in flight: one being collated, one being decoded.
        it = iter(starts)
        pending = deque(self._submit_batch(pool, s) for s in itertools.islice(it, 2))
        while pending:
            start, futures = pending.popleft()
            following = next(it, None)
            if following is not None:
                pending.append(self._submit_batch(pool, following))
            yield self._collate(start, [f.result() for f in futures])


def decode_all(
    items: Sequence[ImageItem | None],
    transform: Callable[[Image.Image | torch.Tensor], Any],
    *,
    num_workers: int = 0,
    on_error: Literal["raise", "nan"] = "raise",
    draft_size: tuple[int, int] | None = None,
    input_name: str = "X",
    stack: bool = True,
) -> tuple[torch.Tensor | list[Any], list[tuple[int, ImageLoadError]]]:
    """Decode every item at once, in ``num_workers`` threads.

    Returns ``(decoded, failures)``: with ``stack`` a uint8 tensor (n, 3, H, W)
    (black images where decoding failed), else the list of ``transform``
    outputs (None where it failed); ``failures`` lists (index, ImageLoadError).
    """

    def decode(index):
        return decode_item_or_error(items[index], index, transform, draft_size, input_name, on_error)

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

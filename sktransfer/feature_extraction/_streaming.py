"""The extraction loop behind ``transform`` and ``iter_transform``.

Images are embedded chunk by chunk, so memory depends on the chunk size, not
on the number of images. Without a store, one decoder runs over the whole
input and its read-ahead crosses chunk boundaries; with one
(:class:`~sktransfer.storage.EmbeddingStore`), each chunk is looked up
first, only the misses are decoded and embedded, and each batch is written
back as soon as it is computed, so a killed run keeps everything but the
batch in flight. A store that cannot be opened or written (a read-only or
full disk, a damaged file) gives one warning and the loop goes on without
it, as the exported-graph cache does: a cache never breaks a transform.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Sequence

import numpy as np

from ..image import ImageLoadError
from ..image._batch_decoder import BatchDecoder, item_source, resolve_num_workers
from ..image._jpeg import prepare_for

# What a store that cannot be used raises: an unwritable or full disk, a
# damaged database file.
_STORE_ERRORS = (OSError, sqlite3.Error)


def index_labels(X):
    """The index labels of a pandas ``X`` when they are not its positions (else None): how its rows are named.

    A dask partition, or any filtered frame, keeps the labels of the whole
    collection; its positions would name the wrong rows.
    """
    index = getattr(X, "index", None)
    if index is None or not hasattr(index, "equals"):  # a list's index is a method, not labels
        return None
    labels = list(index)
    return None if labels == list(range(len(labels))) else labels


def refuse_missing(items, input_name="X", labels=None):
    """With ``on_error="raise"``: a ValueError naming the first missing item, before any work.

    ``labels`` (from :func:`index_labels`) name the items by index label
    instead of by position.
    """
    missing = [i for i, item in enumerate(items) if item is None]
    if missing and labels is not None:
        raise ValueError(
            f"{input_name} at index {labels[missing[0]]!r} is missing (None, NaN or NA); {len(missing)} of "
            f"{len(items)} items are missing (index {[labels[i] for i in missing[:10]]}). Drop those rows, "
            "or pass on_error='nan' to get NaN embeddings for them"
        )
    if missing:
        raise ValueError(
            f"{input_name}[{missing[0]}] is missing (None, NaN or NA); {len(missing)} of {len(items)} "
            f"items are missing (indices {missing[:10]}). Drop those rows, or pass on_error='nan' "
            "to get NaN embeddings for them"
        )


def warn_failures(failures, n_items, stacklevel=3):
    """The one warning listing every input that gave a NaN row."""
    if not failures:
        return
    listing = "\n".join(f"  {err.source}: {err.reason}" for _, err in failures)
    warnings.warn(
        f"{len(failures)} of {n_items} images could not be read; their rows are NaN:\n{listing}",
        UserWarning,
        stacklevel=stacklevel,
    )


class EmbeddingLoop:
    """Embed validated items in chunks; yields ``(start, block, failures)``.

    Parameters
    ----------
    extractor : fitted PretrainedFeatureExtractor
    items : list
        From ``check_images`` (missing values are None).
    chunk_size : int
        Images per yielded block (rounded up to whole batches).
    store : EmbeddingStore or None
    """

    def __init__(self, extractor, items, chunk_size, store=None):
        self.extractor = extractor
        self.items = items
        self.batch_size = extractor._batch_size()
        self.chunk_size = max(self.batch_size, -(-int(chunk_size) // self.batch_size) * self.batch_size)
        self.store = store
        self.transform = extractor.backbone_.preprocessing.pil_transform()
        prepare_for(len(items))  # decode_jpeg, when the job pays for its import
        self.runner = extractor._get_runner()
        self.n_features = extractor.n_features_out_
        self.progress = None
        if extractor.verbose and len(items) > 2 * self.batch_size:
            self.progress = _progress(len(items))

    def _decoder(self, items, sources=None):
        return BatchDecoder(
            items,
            self.transform,
            batch_size=self.batch_size,
            num_workers=resolve_num_workers(self.extractor.num_workers),
            on_error=self.extractor.on_error,
            draft_size=self.transform.draft_size,
            sources=sources,
        )

    def _advance(self, n):
        if self.progress is not None:
            self.progress.update(n)

    def __iter__(self):
        try:
            if self.store is None:
                yield from self._iter_plain()
            else:
                yield from self._iter_stored()
        finally:
            if self.progress is not None:
                self.progress.close()

    def _iter_plain(self):
        # One decoder over everything: it reads ahead across chunk ends.
        block, block_start, failures = None, 0, []
        for start, batch, fails in self._decoder(self.items):
            if block is None:
                block_start = start
                block = np.empty((min(self.chunk_size, len(self.items) - start), self.n_features), np.float32)
            if batch is not None:
                block[start - block_start : start - block_start + len(batch)] = self.runner(batch)[0]
            failures.extend(fails)
            self._advance(min(self.batch_size, len(self.items) - start))
            if start + self.batch_size >= block_start + len(block):
                yield block_start, _nan_rows(block, failures, block_start), failures
                block, failures = None, []

    def _store_failed(self, exc):
        """Like the graph cache: a store that cannot be used warns once and is left alone."""
        warnings.warn(
            f"the embedding store {self.store!r} cannot be used ({exc}); embedding without it",
            UserWarning,
            stacklevel=5,
        )
        self.store = None

    def _lookup(self, config, keys):
        if self.store is not None:
            try:
                return self.store.get(config, keys)
            except _STORE_ERRORS as exc:
                self._store_failed(exc)
        return [None] * len(keys)

    def _keep(self, config, keys, vectors):
        if self.store is not None:
            try:
                self.store.put(config, keys, vectors)
            except _STORE_ERRORS as exc:
                self._store_failed(exc)

    def _iter_stored(self):
        from ..storage import content_key

        try:
            config = self.store.register(self.extractor.output_description(), self.n_features)
        except _STORE_ERRORS as exc:
            self._store_failed(exc)
            yield from self._iter_plain()
            return
        for chunk_start in range(0, len(self.items), self.chunk_size):
            chunk = self.items[chunk_start : chunk_start + self.chunk_size]
            keys = [content_key(item) for item in chunk] if self.store is not None else [None] * len(chunk)
            block = np.empty((len(chunk), self.n_features), np.float32)
            misses = []
            for offset, vector in enumerate(self._lookup(config, keys)):
                if vector is None:
                    misses.append(offset)
                else:
                    block[offset] = vector
            self._advance(len(chunk) - len(misses))
            failures = []
            # The misses are stored under the key of what the decoder read,
            # not under the look-up's: a file replaced in between must not
            # give its new photo's embedding to the old photo's key.
            read = _ReadOnce([chunk[i] for i in misses])
            sources = [item_source(chunk[i], chunk_start + i) for i in misses]
            for start, batch, fails in self._decoder(read, sources):
                rows = misses[start : start + self.batch_size]
                if batch is not None:
                    vectors = self.runner(batch)[0]
                    block[rows] = vectors
                    # Failed items were embedded as black fillers: never store those.
                    failed = {i for i, _ in fails}
                    self._keep(
                        config,
                        [None if j in failed else read.keys[j] for j in range(start, start + len(rows))],
                        vectors,
                    )
                failures.extend(_renamed(chunk, misses[i], err, chunk_start) for i, err in fails)
                self._advance(len(rows))
            failures.sort(key=lambda pair: pair[0])
            yield chunk_start, _nan_rows(block, failures, chunk_start), failures


class _ReadOnce(Sequence):
    """Items as the decoder reads them (a file's or URL's bytes, read once), with the key of what was read.

    The decoder's threads index it as they go, so only the batches in flight
    are held in memory; ``keys[i]`` is set once item ``i`` has been read.
    """

    def __init__(self, items):
        from ..storage import read_with_key

        self.items = items
        self.keys = [None] * len(items)
        self._read = read_with_key

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        item, self.keys[index] = self._read(self.items[index])
        return item


def embed_all(extractor, items, store=None):
    """Embed every item at once: ``(array (n, n_features_out_), failures)``."""
    if not items:  # an empty input (dask's meta) answers an empty table
        return np.empty((0, extractor.n_features_out_), dtype=np.float32), []
    blocks, failures = [], []
    for _, block, fails in EmbeddingLoop(extractor, items, chunk_size=len(items), store=store):
        blocks.append(block)
        failures.extend(fails)
    return (blocks[0] if len(blocks) == 1 else np.concatenate(blocks)), failures


def iter_embeddings(extractor, items, chunk_size, store=None):
    """Yield float32 blocks of `chunk_size` rows (whole batches), warning once at the end."""
    failures = []
    for _, block, fails in EmbeddingLoop(extractor, items, chunk_size=chunk_size, store=store):
        failures.extend(fails)
        yield block
    warn_failures(failures, len(items), stacklevel=4)


def _renamed(chunk, offset, error, chunk_start):
    """A decoder failure on the list of misses, named by its position in the whole input."""
    index = chunk_start + offset
    source = item_source(chunk[offset], index)
    return index, ImageLoadError(source, error.reason)


def _nan_rows(block, failures, block_start):
    for index, _ in failures:
        block[index - block_start] = np.nan
    return block


def _progress(total):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with skorch, but stay usable without it
        return None
    return tqdm(total=total, unit="img", desc="embedding")

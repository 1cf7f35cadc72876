"""EmbeddingStore: a persistent, content-addressed table of embeddings.

One embedding per (configuration key, content key): the configuration key
names everything that changes the output (network, weights, layer, pooling,
preprocessing, engine, precision, library version), the content key is the
SHA-256 of the image (see ``_keys``). Rows are only ever added.

Why SQLite (the standard library's ``sqlite3``), one row per embedding as a
BLOB, in WAL mode, rather than append-only Parquet part files: measured
side by side (``benchmarks/embedding_store.py``, figures in
benchmarks/RESULTS.md), both write the small batches an extractor produces
(one transaction, or one file, per batch) at about the same rate, faster
than a network computes them on a CPU (on a GPU, batches are larger and so
are transactions); but SQLite looks up keys faster through its primary-key
index (a Parquet store must rebuild an index from every part file on open and
then read whole parts), two processes writing at once finish sooner (WAL
admits one writer at a time, the other waits on ``busy_timeout``), and the
folder stays one file instead of a part per batch, with no compaction to
run. A transaction is atomic, so a process killed at any point loses only
the batch it was writing and leaves a readable store. It needs no extra
package. One limit comes with WAL: the directory must be on a local disk
shared by the writers (one machine, any number of processes); WAL needs
shared memory, which network file systems do not provide, so cluster
workers on several machines each need a store of their own.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._typing import StrPath

__all__ = ["EmbeddingStore"]

_FILE_NAME = "embeddings.sqlite"
# How long a writer waits for another process's transaction, in ms.
_BUSY_TIMEOUT_MS = 60_000
# Keys per SELECT ... IN (...): well under SQLite's bound-variable limit.
_LOOKUP_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS configurations (
    config TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    n_features INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    config TEXT NOT NULL,
    content BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (config, content)
) WITHOUT ROWID;
"""


class EmbeddingStore:
    """A folder that keeps embeddings between runs, keyed by image content.

    Pass it (or just the folder's path) as ``cache=`` to
    :class:`~sktransfer.PretrainedFeatureExtractor`: ``transform`` then looks
    every image up first and embeds only those not stored yet, writing them
    back batch by batch. Images are recognised by their bytes (a file
    rewritten under the same name is a new image), and embeddings by every
    setting that changes them, so a store can be shared by many models.

    Parameters
    ----------
    directory : str or os.PathLike
        Folder of the store (``~`` expanded), created when missing. It holds one SQLite
        database file, which any number of processes on this machine may read
        and write at once.

    Notes
    -----
    The database is opened per thread and per process, so a store can be
    pickled (only its folder travels) and used from worker processes.
    A write is one transaction: a process killed mid-run loses at most the
    batch it was writing. WAL mode needs a local file system; on a network
    file system give each machine its own store.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> store = EmbeddingStore(tempfile.mkdtemp())
    >>> key = store.register({"model": "demo"}, n_features=2)
    >>> store.put(key, [b"a" * 32], np.array([[1.0, 2.0]], dtype=np.float32))
    >>> store.get(key, [b"a" * 32, b"b" * 32])
    [array([1., 2.], dtype=float32), None]
    """

    def __init__(self, directory: StrPath) -> None:
        self.directory = os.path.expanduser(os.fspath(directory))
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.directory!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and os.path.abspath(other.directory) == os.path.abspath(self.directory)

    def __hash__(self) -> int:
        return hash(os.path.abspath(self.directory))

    def __getstate__(self) -> dict[str, str]:
        return {"directory": self.directory}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.directory = state["directory"]
        self._local = threading.local()

    @property
    def path(self) -> str:
        """The database file."""
        return os.path.join(self.directory, _FILE_NAME)

    def _connection(self):
        # sqlite3 connections belong to one thread; and a connection
        # inherited through fork must not be used, hence the pid check.
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            try:
                os.makedirs(self.directory, exist_ok=True)
                connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                connection.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a commit survives the process being killed; only a
                # power cut can lose the last transactions (never corrupt).
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise OSError(f"cannot open the embedding store in {self.directory!r}: {exc}") from exc
            local.connection, local.pid = connection, os.getpid()
        return local.connection

    def register(self, description: dict[str, Any], n_features: int) -> str:
        """Record a configuration; returns its key (SHA-256 of its JSON).

        Parameters
        ----------
        description : dict
            JSON-serialisable settings that determine the embeddings.
        n_features : int
            Width of the embeddings of this configuration.

        Returns
        -------
        str
        """
        from ..runtime import output_key

        key = output_key(description)
        text = json.dumps(description, sort_keys=True, default=str)
        with _transaction(self._connection()) as db:
            db.execute(
                "INSERT OR IGNORE INTO configurations (config, description, n_features) VALUES (?, ?, ?)",
                (key, text, int(n_features)),
            )
        return key

    def configurations(self) -> dict[str, tuple[dict[str, Any], int]]:
        """Every configuration stored: a dict key -> (description, n_features)."""
        rows = self._connection().execute("SELECT config, description, n_features FROM configurations")
        return {key: (json.loads(text), n) for key, text, n in rows}

    def get(self, config: str, contents: Iterable[bytes | None]) -> list[NDArray[np.float32] | None]:
        """The stored embedding of each content key, or None where absent.

        Parameters
        ----------
        config : str
            A key from :meth:`register`.
        contents : sequence of bytes
            Content keys (see :func:`sktransfer.storage.content_key`).

        Returns
        -------
        list of (numpy.ndarray or None)
            float32 vectors, aligned with `contents`.
        """
        contents = list(contents)
        found = {}
        db = self._connection()
        for start in range(0, len(contents), _LOOKUP_CHUNK):
            part = [c for c in contents[start : start + _LOOKUP_CHUNK] if c is not None]
            if not part:
                continue
            marks = ",".join("?" * len(part))
            rows = db.execute(
                f"SELECT content, vector FROM embeddings WHERE config = ? AND content IN ({marks})",
                (config, *part),
            )
            for content, vector in rows:
                found[content] = np.frombuffer(vector, dtype=np.float32)
        return [found.get(c) if c is not None else None for c in contents]

    def put(self, config: str, contents: Iterable[bytes | None], vectors: ArrayLike) -> None:
        """Store embeddings (one transaction); keys already stored are kept.

        Parameters
        ----------
        config : str
        contents : sequence of bytes
            Content keys, one per row of `vectors`.
        vectors : array-like of shape (n, n_features)
            Embeddings; stored as float32. Rows with NaN are not stored.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [
            (config, content, vector.tobytes())
            for content, vector in zip(contents, vectors)
            if content is not None and np.isfinite(vector).all()
        ]
        if not rows:
            return
        with _transaction(self._connection()) as db:
            db.executemany("INSERT OR IGNORE INTO embeddings (config, content, vector) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (reopened on next use)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.pid = None


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error.

    IMMEDIATE takes the write lock up front, so two writers queue on the
    busy timeout instead of one failing with "database is locked" when it
    upgrades a read transaction.
    """

    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, tb):
        self.connection.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def as_store(cache: StrPath | EmbeddingStore | None) -> EmbeddingStore | None:
    """An EmbeddingStore from a ``cache`` parameter (None, a path or a store)."""
    if cache is None or isinstance(cache, EmbeddingStore):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return EmbeddingStore(cache)
    raise TypeError(f"cache must be None, a folder path or an EmbeddingStore, got {type(cache).__name__}")

"""EmbeddingStore: a persistent, content-addressed table of embeddings.

One embedding per (configuration key, content key): the configuration key
names everything that changes the output (network, weights, layer, pooling,
preprocessing, engine, precision, library version), the content key is the
SHA-256 of the image (see ``_keys``). Rows are only ever added, except that
a damaged row is deleted when it is read, so that it can be written again.

Every row carries a CRC32 of its configuration, content key and vector
bytes: a flipped bit, a vector of the wrong length or type, or one holding
NaN (never written: ``put`` skips non-finite rows) is not served but treated
as absent, with one warning per lookup, and the extractor computes it again.
A CRC32 takes a few microseconds per 1280-wide vector, so warm lookups stay fast.
The database records its format in SQLite's ``user_version``; a file of
another format (an older sktransfer) is refused when opened, as a store that
cannot be used, and is never rewritten.

Size. A 1280-wide float32 vector is 5,120 bytes, more than fits in a row of
a 4 KiB page: format 2 stored each row over overflow pages, 8.8 kB a row
(1.7x the vector). Format 3 packs it: rows live in a rowid table, in the
order they were written, so its pages fill up whatever the keys (a table
ordered by content keys, which are random hashes, splits its pages and
leaves them a third empty), with an index on (configuration, content key);
the database uses 64 KiB pages (SQLite's largest, a dozen rows each
without overflow pages); and each vector is stored either as its bytes or,
when smaller, as a bitmap of its non-zero values followed by those values
(the pooled activations of ReLU networks are about half exact zeros); both
are lossless, bit for bit (a -0.0 is kept). The first byte of the blob
says which (:func:`_pack`). The checksum covers the stored blob.

Several machines. Each machine keeps its own store (see WAL below);
:meth:`EmbeddingStore.merge` copies the rows of another store file into
this one (rows already present are kept), so stores filled on different
machines by a rerun can be gathered into one and shipped back.

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
import warnings
import zlib
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

# The table layout's version, kept in the database's user_version (0: a
# new, empty file, or a store written before versions were recorded).
_FORMAT = 3
# SQLite's largest page: a dozen packed 1280-wide rows fit in one, no overflow pages.
_PAGE_SIZE = 65536
# The first byte of a stored vector: its bytes as they are, or packed.
_RAW, _SPARSE = 0, 1
_SCHEMA = (
    """CREATE TABLE configurations (
        config TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        n_features INTEGER NOT NULL
    )""",
    # vector: _pack of the float32 vector; checksum: _row_checksum of the row, checked on every read.
    """CREATE TABLE embeddings (
        config TEXT NOT NULL,
        content BLOB NOT NULL,
        vector BLOB NOT NULL,
        checksum INTEGER NOT NULL,
        UNIQUE (config, content)
    )""",
)


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
    file system give each machine its own store, and gather them with
    :meth:`merge` (copy the other machines' files over first).

    Every stored vector carries a checksum. A damaged row (a flipped bit,
    NaN, a vector of the wrong length or type) is never served: :meth:`get`
    answers None for it, as if absent, deletes it and warns once per call
    with the number of such rows, so the extractor computes those images
    again and stores them anew. A database of another format (written by an
    older sktransfer) cannot be opened: an OSError saying so, which the
    extractor turns into one warning, embedding without the store; delete
    the file to start a new store.

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
            connection = None
            try:
                os.makedirs(self.directory, exist_ok=True)
                connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                # First: a file of another format is left as it is (WAL mode rewrites its header).
                _create_or_check_format(connection, self.path)
                connection.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a commit survives the process being killed; only a
                # power cut can lose the last transactions (never corrupt).
                connection.execute("PRAGMA synchronous=NORMAL")
            except (OSError, sqlite3.Error) as exc:
                if connection is not None:
                    connection.close()
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
        """The stored embedding of each content key, or None where absent or damaged.

        A damaged row (its checksum, length, type or finiteness wrong) is
        deleted, so that :meth:`put` can store it anew, and one warning per
        call counts such rows.

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
        db = self._connection()
        width = _width(db, config)
        if width is None:  # put refuses unregistered configurations: nothing can be stored
            return [None] * len(contents)
        seed = zlib.crc32(config.encode())
        intact, damaged = {}, []
        for start in range(0, len(contents), _LOOKUP_CHUNK):
            part = [c for c in contents[start : start + _LOOKUP_CHUNK] if c is not None]
            if not part:
                continue
            marks = ",".join("?" * len(part))
            rows = db.execute(
                f"SELECT content, vector, checksum FROM embeddings WHERE config = ? AND content IN ({marks})",
                (config, *part),
            )
            for content, vector, checksum in rows:
                # The type first: a damaged row may hold TEXT; then a blob that
                # unpacks to no whole vector of this width is damaged too.
                unpacked = None
                if type(vector) is bytes and checksum == _row_checksum(seed, content, vector):
                    unpacked = _unpack(vector, width)
                # put never writes a non-finite vector: one that reads back so is damaged.
                if unpacked is not None and np.isfinite(unpacked).all():
                    intact[content] = unpacked
                else:
                    damaged.append((content, vector))
        found = intact
        if damaged:
            self._drop_damaged(db, config, damaged)
        return [found.get(c) if c is not None else None for c in contents]

    def _drop_damaged(self, db, config, damaged):
        """Delete damaged rows (so that put can write them anew) and say so once."""
        try:
            with _transaction(db) as writer:
                # "vector = ?": a row another process has rewritten since is kept.
                writer.executemany(
                    "DELETE FROM embeddings WHERE config = ? AND content = ? AND vector = ?",
                    [(config, content, vector) for content, vector in damaged],
                )
        except sqlite3.Error:
            # A read-only store: the rows stay (and put will report the store
            # as unusable); they are still not served.
            pass
        warnings.warn(
            f"{len(damaged)} stored embedding(s) in {self.path!r} were damaged (checksum mismatch, wrong length "
            "or type, or not finite); they are not used and are computed again",
            UserWarning,
            stacklevel=3,
        )

    def put(self, config: str, contents: Iterable[bytes | None], vectors: ArrayLike) -> None:
        """Store embeddings (one transaction); keys already stored are kept.

        Parameters
        ----------
        config : str
        contents : sequence of bytes
            Content keys, one per row of `vectors`.
        vectors : array-like of shape (n, n_features)
            Embeddings; stored as float32. Rows with NaN are not stored.

        Raises
        ------
        ValueError
            If `config` is not registered, or `vectors` is not 2-D with the
            width registered for it.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        db = self._connection()
        width = _width(db, config)
        if width is None:
            raise ValueError(f"config {config!r} is not registered in {self!r}; call register() first")
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise ValueError(
                f"vectors must have shape (n, {width}) (the width registered for this config), got {vectors.shape}"
            )
        seed = zlib.crc32(config.encode())
        rows = []
        for content, vector in zip(contents, vectors):
            if content is not None and np.isfinite(vector).all():
                data = _pack(vector)
                rows.append((config, content, data, _row_checksum(seed, content, data)))
        if not rows:
            return
        with _transaction(db) as writer:
            writer.executemany(
                "INSERT OR IGNORE INTO embeddings (config, content, vector, checksum) VALUES (?, ?, ?, ?)", rows
            )

    def merge(self, other: StrPath | EmbeddingStore) -> int:
        """Copy every row of another store into this one (one transaction); returns how many were new.

        For stores filled on several machines (each machine needs its own,
        see the Notes): copy their folders to one machine (the database with
        its ``-wal`` file, if there is one; or close the writers first) and
        merge them into one store, which can then be copied back to every
        machine. Rows are
        copied as stored, checksums included, and checked on their first
        read as any other; a key this store already holds keeps its row.

        Parameters
        ----------
        other : str, os.PathLike or EmbeddingStore
            The other store, or its folder. Its rows are left as they are.

        Returns
        -------
        int
            Rows added.

        Raises
        ------
        OSError
            If `other` holds no store, a file that is not one, a store of
            another format, or is this store.
        ValueError
            If both stores register a configuration with different widths
            (nothing is merged).
        """
        source = as_store(other)
        if os.path.realpath(source.path) == os.path.realpath(self.path):
            raise OSError(f"cannot merge {self!r} into itself")
        if not os.path.isfile(source.path):
            raise OSError(f"{source.directory!r} holds no embedding store (no {_FILE_NAME})")
        try:
            version = _read_version(source.path)
        except sqlite3.Error as exc:  # not an SQLite database: a damaged or foreign file
            raise OSError(f"{source.path} is not an embedding store that can be read: {exc}") from exc
        if version != _FORMAT:
            raise OSError(
                f"{source.path} holds a store of another format ({_describe(version)}); this sktransfer merges "
                f"stores of format {_FORMAT} only"
            )
        db = self._connection()
        try:
            db.execute("ATTACH DATABASE ? AS other", (source.path,))
        except sqlite3.Error as exc:
            raise OSError(f"cannot open {source.path} to merge it: {exc}") from exc
        try:
            with _transaction(db) as writer:  # counted under the write lock: only this merge's rows
                _refuse_width_clash(writer, source.path, self.path)
                writer.execute("INSERT OR IGNORE INTO main.configurations SELECT * FROM other.configurations")
                added = writer.execute(
                    "INSERT OR IGNORE INTO main.embeddings (config, content, vector, checksum) "
                    "SELECT config, content, vector, checksum FROM other.embeddings"
                ).rowcount
            return added
        except sqlite3.Error as exc:  # a damaged file, a full disk: rolled back, nothing merged
            raise OSError(f"cannot merge {source.path} into {self.path}: {exc}") from exc
        finally:
            db.execute("DETACH DATABASE other")

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (reopened on next use)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.pid = None


def _refuse_width_clash(db, source: str, target: str) -> None:
    """A ValueError if the attached store ``other`` registers a configuration of ``main`` with another width."""
    clash = db.execute(
        "SELECT config, other.configurations.n_features, main.configurations.n_features "
        "FROM other.configurations JOIN main.configurations USING (config) "
        "WHERE other.configurations.n_features != main.configurations.n_features"
    ).fetchone()
    if clash is not None:
        raise ValueError(
            f"{source} registers configuration {clash[0]} with {clash[1]} features, {target} with {clash[2]}: "
            "the stores disagree on what it computes; nothing was merged"
        )


def _row_checksum(seed: int, content: bytes, vector: bytes) -> int:
    """CRC32 of a row's content key and vector, seeded with its configuration's CRC32."""
    return zlib.crc32(vector, zlib.crc32(content, seed))


def _pack(vector: np.ndarray) -> bytes:
    """A float32 vector as stored: a byte ``_RAW`` and its bytes, or ``_SPARSE``, a bitmap of non-zeros and those.

    Zeros are found on the bits (a -0.0 is a non-zero, kept as it is).
    """
    bits = vector.view(np.uint32)
    nonzero = bits != 0
    kept = int(np.count_nonzero(nonzero))
    if (len(vector) + 7) // 8 + 4 * kept < 4 * len(vector):
        return bytes([_SPARSE]) + np.packbits(nonzero).tobytes() + bits[nonzero].tobytes()
    return bytes([_RAW]) + vector.tobytes()


def _unpack(blob: bytes, width: int) -> np.ndarray | None:
    """The float32 vector of width `width` that :func:`_pack` stored, or None if `blob` is none."""
    if blob[:1] == bytes([_RAW]) and len(blob) == 1 + 4 * width:
        return np.frombuffer(blob, dtype=np.float32, offset=1)
    if blob[:1] != bytes([_SPARSE]) or len(blob) < 1 + (width + 7) // 8:
        return None
    mask_end = 1 + (width + 7) // 8
    nonzero = np.unpackbits(np.frombuffer(blob, dtype=np.uint8, count=mask_end - 1, offset=1), count=width).view(bool)
    values = blob[mask_end:]
    if len(values) != 4 * int(np.count_nonzero(nonzero)):
        return None
    bits = np.zeros(width, dtype=np.uint32)
    bits[nonzero] = np.frombuffer(values, dtype=np.uint32)
    return bits.view(np.float32)


def _read_version(path: str) -> int:
    """The ``user_version`` of the database at `path`, read without writing to it."""
    from pathlib import Path

    db = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def _width(db, config: str) -> int | None:
    """The n_features registered for `config`, or None."""
    row = db.execute("SELECT n_features FROM configurations WHERE config = ?", (config,)).fetchone()
    return None if row is None else row[0]


def _create_or_check_format(connection, path: str) -> None:
    """Create the tables in a new database; refuse one of another format.

    The version is read without a lock first, so that opening an existing
    store takes no write lock.
    """
    if connection.execute("PRAGMA user_version").fetchone()[0] == _FORMAT:
        return
    # Takes effect only on a database without tables yet (a new store).
    connection.execute(f"PRAGMA page_size={_PAGE_SIZE}")
    connection.execute("BEGIN IMMEDIATE")  # another process may be creating it now
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        has_tables = connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if version != _FORMAT and (version != 0 or has_tables):
            raise OSError(
                f"{path} holds a store of another format ({_describe(version)}; this sktransfer reads and writes "
                f"format {_FORMAT}, packed vectors with a checksum each); it is left untouched: delete the file to "
                "start a new store, or keep it for the sktransfer that wrote it"
            )
        if version == 0:
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version={_FORMAT}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _describe(version: int) -> str:
    return "an older format, from before formats were recorded" if version == 0 else f"format {version}"


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

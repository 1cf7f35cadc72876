"""The embedding table: a Parquet file written part by part, resumable, and read back.

:class:`EmbeddingTableWriter` writes rows as they are computed, each chunk
to its own Parquet part file (written under a temporary name, then
renamed) in ``OUT.partial/``. A Parquet file is readable only once its
footer is written, so a single file growing row group by row group would be
lost whole on a kill; finished part files are not. A writer opened again
with the same inputs and settings knows the rows its parts hold; when every
row is done the parts are joined, in input order, into ``OUT`` (again
through a temporary name) and the folder is removed, its manifest last.
The join reads every part's row positions first and takes each position
once, in input order, so parts of an earlier run cut with another chunk size
never give a row twice; part files in a folder without a manifest belong to
no known run (a clean-up cut short) and are removed when a run starts
afresh. A lock file in the folder keeps a second writer out while one runs.
What fills the table
(:func:`sktransfer.embed`, which runs an extractor) lives with the
extractor: this module only knows the format.

The embedding is one fixed-size list column of float32 rather than one
column per feature: the schema stays the same whatever the width (1280
columns would make every reader parse 1280 column descriptions), pandas and
pyarrow read it as is, and :func:`read_embeddings` (or
``np.stack(frame["embedding"])``) gives the (n, d) matrix scikit-learn wants.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._typing import StrPath

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EmbeddingTableWriter", "read_embeddings"]

_PART = "part-{:012d}.parquet"
_MANIFEST = "manifest.json"
_LOCK = "lock"
_METADATA_KEY = b"sktransfer"


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "writing and reading embedding tables needs pyarrow: pip install 'sktransfer[parquet]'"
        ) from exc
    return pyarrow


def _manifest(paths, labels, config):
    digest = hashlib.sha256(json.dumps([paths, labels]).encode()).hexdigest()
    # Through JSON and back, so that it compares equal to the one read from disk.
    return json.loads(json.dumps({"inputs": digest, "configuration": config}))


def _is_part(name):
    return name.startswith("part-") and name.endswith(".parquet")


def _part_names(partial):
    return sorted(name for name in os.listdir(partial) if _is_part(name))


def _lock(partial):
    """Hold the folder's lock file, or raise naming the run that holds it; None where locks do not exist."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, concurrent runs are not detected
        return None
    path = os.path.join(partial, _LOCK)
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 64).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RuntimeError(
                f"{partial!r} is in use by another embed() run (pid {holder}) writing the same output; "
                "wait for it to finish, or stop it and rerun"
            ) from None
        try:
            same_file = os.path.samestat(os.fstat(handle), os.stat(path))
        except FileNotFoundError:  # the run that held it removed it on finishing
            same_file = False
        if same_file:
            os.ftruncate(handle, 0)
            os.write(handle, str(os.getpid()).encode())
            return handle
        os.close(handle)
        os.makedirs(partial, exist_ok=True)


def _open_partial(partial, manifest):
    """``(done, lock)``: positions already written by an earlier run (empty for a fresh start), the held lock."""
    pyarrow = _pyarrow()
    os.makedirs(partial, exist_ok=True)
    lock = _lock(partial)
    try:
        manifest_path = os.path.join(partial, _MANIFEST)
        if os.path.exists(manifest_path):
            with open(manifest_path, encoding="utf-8") as file:
                earlier = json.load(file)
            if earlier != manifest:
                raise ValueError(
                    f"{partial!r} holds the unfinished output of an embed() run on other images or settings; "
                    "delete that folder to start again, or rerun with the same inputs and settings to finish it"
                )
            done = set()
            for name in _part_names(partial):
                table = pyarrow.parquet.read_table(os.path.join(partial, name), columns=["_position"])
                done.update(table.column(0).to_pylist())
            return done, lock
        # The manifest is written before any part and removed after all of
        # them: parts without one are what a clean-up cut short left, of a
        # run that can no longer be identified.
        for name in _part_names(partial):
            os.remove(os.path.join(partial, name))
        _write_atomically(manifest_path, lambda f: f.write(json.dumps(manifest).encode()), partial)
        return set(), lock
    except BaseException:
        _unlock(lock)
        raise


def _unlock(lock):
    if lock is not None:
        os.close(lock)  # closing the descriptor releases the flock


def _write_atomically(path, write, folder):
    # Created by os.open with 0o666, so the umask decides who may read the
    # result, as for any file the user writes (mkstemp would force 0o600).
    while True:
        temporary = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _schema(n_features, metadata):
    pa = _pyarrow()
    return pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.string()),
            ("error", pa.string()),
            ("embedding", pa.list_(pa.float32(), n_features)),
        ],
        metadata={_METADATA_KEY: json.dumps(metadata).encode()},
    )


def _write_part(partial, positions, paths, labels, errors, block, schema):
    """One chunk to ``partial/part-<first position>.parquet``, atomically."""
    pa = _pyarrow()
    n_features = block.shape[1]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1), pa.float32()), n_features)
    table = pa.Table.from_arrays(
        [
            pa.array(paths, pa.string()),
            pa.array(labels, pa.string()),
            pa.array(errors, pa.string()),
            embedding,
            pa.array(positions, pa.int64()),
        ],
        schema=schema.append(pa.field("_position", pa.int64())),
    )
    path = os.path.join(partial, _PART.format(positions[0]))
    _write_atomically(path, lambda f: pa.parquet.write_table(table, f), partial)


def _row_sources(partial, n_rows):
    """For each row position in order, ``(part name, row in that part)``: each position once, or a ValueError."""
    pa = _pyarrow()
    source = [None] * n_rows
    for name in _part_names(partial):
        positions = pa.parquet.read_table(os.path.join(partial, name), columns=["_position"]).column(0).to_pylist()
        for row, position in enumerate(positions):
            if not 0 <= position < n_rows:
                raise ValueError(
                    f"{partial!r}: part file {name!r} holds row position {position}, outside 0..{n_rows - 1}; "
                    "delete that folder and rerun embed() to start again"
                )
            # An earlier run's part may hold a position again (cut with
            # another chunk size): under the same manifest it is the same
            # row, kept once.
            if source[position] is None:
                source[position] = (name, row)
    missing = [position for position, found in enumerate(source) if found is None]
    if missing:
        raise ValueError(
            f"{partial!r} lacks {len(missing)} of {n_rows} rows (first missing position {missing[0]}); "
            "rerun embed() with the same inputs and settings to compute them"
        )
    return source


def _join_parts(partial, out, schema, n_rows):
    """The parts' rows, each position once and in input order, into `out`; then the folder removed."""
    pa = _pyarrow()
    folder = os.path.dirname(os.path.abspath(out))
    source = _row_sources(partial, n_rows)

    def write(file):
        loaded = (None, None)
        with pa.parquet.ParquetWriter(file, schema) as writer:
            start = 0
            while start < n_rows:  # one row group per run of rows from one part (one per part, normally)
                name = source[start][0]
                stop = start + 1
                while stop < n_rows and source[stop][0] == name and source[stop][1] == source[stop - 1][1] + 1:
                    stop += 1
                if loaded[0] != name:
                    loaded = (name, pa.parquet.read_table(os.path.join(partial, name)).drop_columns(["_position"]))
                first = source[start][1]
                writer.write_table(loaded[1].slice(first, stop - start))
                start = stop

    _write_atomically(out, write, folder)
    _remove_partial(partial)


def _remove_partial(partial):
    # The manifest goes last: a clean-up cut short leaves a folder that
    # either still vouches for its parts or holds none.
    for name in os.listdir(partial):
        if name not in (_MANIFEST, _LOCK):
            os.remove(os.path.join(partial, name))
    for name in (_MANIFEST, _LOCK):
        if os.path.exists(os.path.join(partial, name)):
            os.remove(os.path.join(partial, name))
    try:
        os.rmdir(partial)
    except OSError:  # another run has just started in it: the folder is now its own
        pass


class EmbeddingTableWriter:
    """Write an embedding table part by part; resume the part files an interrupted writer left.

    Parameters
    ----------
    out : str or os.PathLike
        The Parquet file to write; until it is complete, parts go to
        ``out + ".partial"/``.
    paths, labels : list of str or None
        Every row's path and label, in input order (labels may be all None).
    description : dict
        The JSON-able settings that produce the embeddings, kept in the
        schema metadata ``sktransfer``; a partial folder written under other
        inputs or settings is refused.
    n_features : int
        Width of the embeddings.

    Attributes
    ----------
    done : set of int
        Row positions already written by an earlier, interrupted writer.

    Raises
    ------
    IsADirectoryError
        If `out` is a directory.
    RuntimeError
        If another writer (another ``embed()`` run) holds the partial
        folder's lock; the message names its process id. The lock is
        released by :meth:`finish`, :meth:`close` or the process's end.

    Notes
    -----
    Columns: ``path`` (str), ``label`` (str, or null), ``error`` (null, or
    why the image could not be read; its embedding is then NaN) and
    ``embedding`` (fixed-size list of float32).

    The rows are joined each position once and in input order, whatever
    chunk sizes the runs that wrote the parts used; part files found in a
    partial folder without its manifest are removed (the remains of a
    clean-up cut short, of no identifiable run). The output file's mode
    follows the umask, as for any file the user creates.
    """

    def __init__(
        self,
        out: StrPath,
        *,
        paths: Sequence[str],
        labels: Sequence[str | None],
        description: dict[str, Any],
        n_features: int,
    ) -> None:
        self.check_installed()
        self.check_out(out)
        self.out = os.fspath(out)
        self.partial = self.out + ".partial"
        self.n_rows = len(paths)
        self.done, self._lock = _open_partial(self.partial, _manifest(paths, labels, description))
        self.schema = _schema(n_features, description)

    @staticmethod
    def check_installed() -> None:
        """Raise an ImportError naming the extra when pyarrow is not installed."""
        _pyarrow()

    @staticmethod
    def check_out(out: StrPath) -> None:
        """Raise an IsADirectoryError naming `out` when it is a directory (before any work is done)."""
        if os.path.isdir(out):
            raise IsADirectoryError(
                f"out={os.fspath(out)!r} is a directory; embed() writes one Parquet file: "
                f"pass a file path such as {os.path.join(os.fspath(out), 'embeddings.parquet')!r}"
            )

    def write(
        self,
        positions: Sequence[int],
        paths: Sequence[str],
        labels: Sequence[str | None],
        errors: Sequence[str | None],
        block: np.ndarray,
    ) -> None:
        """One chunk of rows, at input ``positions``, as one part file (atomically).

        Parameters
        ----------
        positions : list of int
        paths, labels, errors : list of str or None
        block : ndarray of shape (len(positions), n_features), float32
        """
        _write_part(self.partial, positions, paths, labels, errors, block, self.schema)

    def finish(self) -> int:
        """Join the parts into ``out``, remove the partial folder and release the lock; returns how many rows failed.

        Raises
        ------
        ValueError
            If the parts lack a row position or hold one outside the inputs;
            the message names the partial folder.
        """
        try:
            _join_parts(self.partial, self.out, self.schema, self.n_rows)
        finally:
            self.close()
        errors = _pyarrow().parquet.read_table(self.out, columns=["error"]).column(0)
        return len(errors) - errors.null_count

    def close(self) -> None:
        """Release the partial folder's lock (the parts stay, for a later run to resume)."""
        _unlock(self._lock)
        self._lock = None

    def __enter__(self) -> EmbeddingTableWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _embedding_matrix(column, path):
    """The (n, d) float32 matrix of an ``embedding`` column: fixed-size lists, or equal-length lists."""
    pa = _pyarrow()
    column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        # What pandas writes back: a variable-size list column, one list per row.
        if column.null_count:
            row = column.is_null().to_pylist().index(True)
            raise ValueError(f"{os.fspath(path)!r}: row {row} has no embedding (null in the 'embedding' column)")
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if len(lengths) else 0
        if (lengths != width).any():
            row = int(np.flatnonzero(lengths != width)[0])
            raise ValueError(
                f"{os.fspath(path)!r}: the 'embedding' lists have unequal lengths "
                f"(row 0 has {width} values, row {row} has {int(lengths[row])}); every row needs the same width"
            )
    else:
        raise ValueError(f"{os.fspath(path)!r}: the 'embedding' column is {column.type}, not a list of numbers")
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(len(column), width).astype(np.float32, copy=False)


def read_embeddings(path: StrPath) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a table written by :func:`sktransfer.embed` (an :class:`EmbeddingTableWriter`): ``(frame, X)``.

    Parameters
    ----------
    path : str or os.PathLike
        The Parquet file. A table pandas wrote back (``pd.read_parquet``,
        then ``to_parquet``), whose ``embedding`` is a list column, is read
        too.

    Returns
    -------
    frame : pandas.DataFrame
        Columns ``path``, ``label`` and ``error``.
    X : ndarray of shape (n_rows, n_features), float32
        The embeddings, NaN rows where ``error`` is set.

    Raises
    ------
    ValueError
        If `path` is the ``.partial`` folder of an unfinished ``embed()``
        run, if it has no ``embedding`` column, or if its embeddings are
        missing or of unequal lengths.
    """
    pa = _pyarrow()
    if os.path.isdir(path) and os.path.exists(os.path.join(path, _MANIFEST)):
        partial = os.fspath(path)
        out = partial.removesuffix(".partial")
        raise ValueError(
            f"{partial!r} is the unfinished output of an embed() run, not a table; rerun embed() with the same "
            f"images, settings and out={out!r} to finish it (it resumes where it stopped), then read {out!r}"
        )
    table = pa.parquet.read_table(path)
    if "embedding" not in table.column_names:
        raise ValueError(f"{os.fspath(path)!r} has no 'embedding' column; it is not a table written by embed()")
    X = _embedding_matrix(table.column("embedding"), path)
    return table.drop_columns(["embedding"]).to_pandas(), X

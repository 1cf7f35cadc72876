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
afresh. A lock file in the folder keeps a second writer out while one runs
(the folder itself is :mod:`._partial_folder`). What fills the table
(:func:`sktransfer.embed`, which runs an extractor) lives with the
extractor: this module only knows the format.

The embedding is one fixed-size list column of float32 rather than one
column per feature: the schema stays the same whatever the width (1280
columns would make every reader parse 1280 column descriptions), pandas and
pyarrow read it as is, and :func:`read_embeddings` (or
``np.stack(frame["embedding"])``) gives the (n, d) matrix scikit-learn wants.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._typing import StrPath
from ._partial_folder import (
    BOOKKEEPING_COLUMNS,
    MANIFEST,
    file_identity,
    manifest,
    open_partial,
    pyarrow_or_hint,
    remove_partial,
    row_sources,
    saved_row_count,
    unlock,
    write_atomically,
    write_part,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EmbeddingTableWriter", "read_embeddings"]

_METADATA_KEY = b"sktransfer"
#: Beside the description: what was asked for (see ``request`` of the writer).
_REQUEST_KEY = b"sktransfer_request"


def _schema(n_features, metadata, request=None):
    pa = pyarrow_or_hint()
    kept = {_METADATA_KEY: json.dumps(metadata).encode()}
    if request is not None:
        kept[_REQUEST_KEY] = json.dumps(request).encode()
    return pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.string()),
            ("error", pa.string()),
            ("embedding", pa.list_(pa.float32(), n_features)),
        ],
        metadata=kept,
    )


def _join_parts(partial, out, schema, n_rows):
    """The parts' rows, each position once and in input order, into `out`; then the folder removed."""
    pa = pyarrow_or_hint()
    folder = os.path.dirname(os.path.abspath(out))
    source = row_sources(partial, n_rows)

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
                    part = pa.parquet.read_table(os.path.join(partial, name))
                    loaded = (name, part.drop_columns([c for c in BOOKKEEPING_COLUMNS if c in part.column_names]))
                first = source[start][1]
                writer.write_table(loaded[1].slice(first, stop - start))
                start = stop

    write_atomically(out, write, folder)
    remove_partial(partial)


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
    request : dict or None, default=None
        What the caller asked for, JSON-able, kept in the schema metadata
        ``sktransfer_request`` of the finished table, for the caller to
        recognise the same request again without computing `description`
        (:meth:`read_request`). Only the caller knows what it means.

    Attributes
    ----------
    done : set of int
        Row positions already written by an earlier, interrupted writer.
    changed : list of int
        Row positions an earlier writer wrote whose file has changed since
        (size, modification or change time, inode): their rows were removed, to
        be written again (one warning names them).

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
    clean-up cut short, of no identifiable run). Each written row keeps its
    file's size, modification and change times and inode (``os.stat``, taken when the
    writer is opened, before any image is read); a resumed writer drops the
    rows of files that changed since, so an image rewritten in place under
    its name is embedded again rather than kept stale. The cost is one
    ``os.stat`` per path per run, no read. A URL cannot be checked and is
    taken as written. The output file's mode
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
        request: dict[str, Any] | None = None,
    ) -> None:
        self.check_installed()
        self.check_out(out)
        self.out = os.fspath(out)
        self.partial = self.out + ".partial"
        self.n_rows = len(paths)
        # Before any image is read: a file rewritten after this is seen as changed by a later resume.
        self._identities = [file_identity(path) for path in paths]
        self.done, changed, self._lock = open_partial(
            self.partial, manifest(paths, labels, description), self._identities
        )
        self.changed = sorted(changed)
        if self.changed:
            named = ", ".join(repr(paths[i]) for i in self.changed[:5])
            warnings.warn(
                f"{len(self.changed)} image(s) changed since the interrupted run wrote their rows in "
                f"{self.partial!r} (size, modification time or inode differ): {named}"
                f"{', ...' if len(self.changed) > 5 else ''}; they are embedded again",
                UserWarning,
                stacklevel=3,
            )
        self.schema = _schema(n_features, description, request)

    @staticmethod
    def check_installed() -> None:
        """Raise an ImportError naming the extra when pyarrow is not installed."""
        pyarrow_or_hint()

    @staticmethod
    def check_out(out: StrPath) -> None:
        """Raise an IsADirectoryError naming `out` when it is a directory (before any work is done)."""
        if os.path.isdir(out):
            raise IsADirectoryError(
                f"out={os.fspath(out)!r} is a directory; embed() writes one Parquet file: "
                f"pass a file path such as {os.path.join(os.fspath(out), 'embeddings.parquet')!r}"
            )

    @staticmethod
    def saved_rows(out: StrPath) -> int:
        """Rows an interrupted writer of `out` has saved in ``out + ".partial"/`` (0 when none).

        Parameters
        ----------
        out : str or os.PathLike
            The Parquet file the writer was writing.

        Returns
        -------
        int
        """
        return saved_row_count(os.fspath(out) + ".partial")

    @staticmethod
    def read_rows(out: StrPath) -> tuple[dict[str, Any] | None, pd.DataFrame]:
        """The settings a finished table was written with, and its rows without the embeddings.

        Parameters
        ----------
        out : str or os.PathLike
            A Parquet file written by this class.

        Returns
        -------
        description : dict or None
            The ``description`` it was written with; None for a Parquet
            file without it (not written by this class).
        frame : pandas.DataFrame
            Its ``path``, ``label`` and ``error`` columns (empty when
            `description` is None).
        """
        pa = pyarrow_or_hint()
        schema = pa.parquet.read_schema(out)
        metadata = (schema.metadata or {}).get(_METADATA_KEY)
        columns = ["path", "label", "error"]
        if metadata is None or not set(columns) <= set(schema.names):
            return None, pa.table({name: pa.array([], pa.string()) for name in columns}).to_pandas()
        return json.loads(metadata), pa.parquet.read_table(out, columns=columns).to_pandas()

    @staticmethod
    def read_request(out: StrPath) -> tuple[dict[str, Any] | None, list[str], list[str | None], int]:
        """The ``request`` a finished table was written with, its paths and labels, and how many rows failed.

        Reads the schema, then, only when it holds a request, the
        ``path``, ``label`` and ``error`` columns; imports neither pandas
        nor anything but pyarrow.

        Parameters
        ----------
        out : str or os.PathLike
            A Parquet file written by this class.

        Returns
        -------
        request : dict or None
            None when the table holds none (written without one, or not by
            this class); the lists are then empty.
        paths, labels : list
        n_failed : int
            Rows whose ``error`` is set.
        """
        pa = pyarrow_or_hint()
        # ParquetFile, not read_table: the latter imports pyarrow.dataset, and with it pandas.
        file = pa.parquet.ParquetFile(out)
        schema = file.schema_arrow
        request = (schema.metadata or {}).get(_REQUEST_KEY)
        columns = ["path", "label", "error"]
        if request is None or not set(columns) <= set(schema.names):
            return None, [], [], 0
        table = file.read(columns=columns)
        errors = table.column("error")
        return (
            json.loads(request),
            table.column("path").to_pylist(),
            table.column("label").to_pylist(),
            len(errors) - errors.null_count,
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
        identities = [self._identities[position] for position in positions]
        write_part(self.partial, positions, paths, labels, errors, block, self.schema, identities)

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
        errors = pyarrow_or_hint().parquet.read_table(self.out, columns=["error"]).column(0)
        return len(errors) - errors.null_count

    def close(self) -> None:
        """Release the partial folder's lock (the parts stay, for a later run to resume)."""
        unlock(self._lock)
        self._lock = None

    def __enter__(self) -> EmbeddingTableWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _embedding_matrix(column, path):
    """The (n, d) float32 matrix of an ``embedding`` column: fixed-size lists, or equal-length lists."""
    pa = pyarrow_or_hint()
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
    pa = pyarrow_or_hint()
    if os.path.isdir(path) and os.path.exists(os.path.join(path, MANIFEST)):
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

"""The embedding table: a Parquet file written part by part, resumable, and read back.

:class:`EmbeddingTableWriter` writes rows as they are computed, each chunk
to its own Parquet part file (written under a temporary name, then
renamed) in ``OUT.partial/``. A Parquet file is readable only once its
footer is written, so a single file growing row group by row group would be
lost whole on a kill; finished part files are not. A writer opened again
with the same inputs and settings knows the rows its parts hold; when every
row is done the parts are joined, in input order, into ``OUT`` (again
through a temporary name) and the folder is removed. What fills the table
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
import shutil
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._typing import StrPath

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EmbeddingTableWriter", "read_embeddings"]

_PART = "part-{:012d}.parquet"
_MANIFEST = "manifest.json"
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


def _open_partial(partial, manifest):
    """Positions already written by an earlier run, or an empty set for a fresh start."""
    pyarrow = _pyarrow()
    manifest_path = os.path.join(partial, _MANIFEST)
    if os.path.isdir(partial) and os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as file:
            earlier = json.load(file)
        if earlier != manifest:
            raise ValueError(
                f"{partial!r} holds the unfinished output of an embed() run on other images or settings; "
                "delete that folder to start again, or rerun with the same inputs and settings to finish it"
            )
        done = set()
        for name in sorted(os.listdir(partial)):
            if name.startswith("part-") and name.endswith(".parquet"):
                table = pyarrow.parquet.read_table(os.path.join(partial, name), columns=["_position"])
                done.update(table.column(0).to_pylist())
        return done
    os.makedirs(partial, exist_ok=True)
    _write_atomically(manifest_path, lambda f: f.write(json.dumps(manifest).encode()), partial)
    return set()


def _write_atomically(path, write, folder):
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
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


def _join_parts(partial, out, schema):
    """The parts, in input order, into `out` (one row group each), then the folder removed."""
    pa = _pyarrow()
    folder = os.path.dirname(os.path.abspath(out))
    names = sorted(n for n in os.listdir(partial) if n.startswith("part-") and n.endswith(".parquet"))

    def write(file):
        with pa.parquet.ParquetWriter(file, schema) as writer:
            for name in names:
                writer.write_table(pa.parquet.read_table(os.path.join(partial, name)).drop_columns(["_position"]))

    _write_atomically(out, write, folder)
    os.chmod(out, 0o644)  # mkstemp's 0600 would make the table private
    shutil.rmtree(partial)


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

    Notes
    -----
    Columns: ``path`` (str), ``label`` (str, or null), ``error`` (null, or
    why the image could not be read; its embedding is then NaN) and
    ``embedding`` (fixed-size list of float32).
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
        self.out = os.fspath(out)
        self.partial = self.out + ".partial"
        self.done = _open_partial(self.partial, _manifest(paths, labels, description))
        self.schema = _schema(n_features, description)

    @staticmethod
    def check_installed() -> None:
        """Raise an ImportError naming the extra when pyarrow is not installed."""
        _pyarrow()

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
        """Join the parts into ``out`` and remove the partial folder; returns how many rows failed."""
        _join_parts(self.partial, self.out, self.schema)
        errors = _pyarrow().parquet.read_table(self.out, columns=["error"]).column(0)
        return len(errors) - errors.null_count


def read_embeddings(path: StrPath) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a table written by :func:`sktransfer.embed` (an :class:`EmbeddingTableWriter`): ``(frame, X)``.

    Parameters
    ----------
    path : str or os.PathLike
        The Parquet file.

    Returns
    -------
    frame : pandas.DataFrame
        Columns ``path``, ``label`` and ``error``.
    X : ndarray of shape (n_rows, n_features), float32
        The embeddings, NaN rows where ``error`` is set.
    """
    pa = _pyarrow()
    table = pa.parquet.read_table(path)
    column = table.column("embedding").combine_chunks()
    width = column.type.list_size
    X = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)
    return table.drop_columns(["embedding"]).to_pandas(), X

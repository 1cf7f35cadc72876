"""embed(): a collection of images to a Parquet table, resumable.

Rows are written as they are computed, each chunk to its own Parquet part
file (written under a temporary name, then renamed) in ``OUT.partial/``. A
Parquet file is readable only once its footer is written, so a single file
growing row group by row group would be lost whole on a kill; finished
part files are not. The next run with the same inputs and settings skips
the rows its parts hold; when every row is done the parts are joined, in
input order, into ``OUT`` (again through a temporary name) and the folder
is removed.

The embedding is one fixed-size list column of float32 rather than one
column per feature: the schema stays the same whatever the width (1280
columns would make every reader parse 1280 column descriptions), pandas and
pyarrow read it as is, and ``read_embeddings`` (or
``np.stack(frame["embedding"])``) gives the (n, d) matrix scikit-learn wants.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

__all__ = ["EmbedResult", "embed", "read_embeddings"]

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


@dataclasses.dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed` did.

    Attributes
    ----------
    path : str
        The Parquet file written.
    n_images : int
        Rows in it.
    n_computed : int
        Rows embedded by this call.
    n_resumed : int
        Rows taken from an interrupted earlier call.
    n_failed : int
        Rows whose image could not be read (``error`` is set, the embedding is NaN).
    """

    path: str
    n_images: int
    n_computed: int
    n_resumed: int
    n_failed: int


def _list_images(paths_or_folder):
    """``(paths, labels)``: labels are class folder names, or None."""
    from ..datasets._folder import IMAGE_EXTENSIONS, load_image_folder
    from ..image._collections import check_images

    if isinstance(paths_or_folder, (str, os.PathLike)):
        folder = os.fspath(paths_or_folder)
        if not os.path.isdir(folder):
            raise NotADirectoryError(f"paths_or_folder={folder!r} is not a folder; pass a folder or a list of paths")
        with os.scandir(folder) as entries:
            has_classes = any(e.is_dir() and not e.name.startswith(".") for e in entries)
        if has_classes:
            paths, labels = load_image_folder(folder)
            return list(paths), [str(label) for label in labels]
        paths = sorted(
            os.path.join(folder, name)
            for name in os.listdir(folder)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not paths:
            raise ValueError(f"folder {folder!r} holds no image file nor class sub-folders")
        return paths, None
    items = check_images(paths_or_folder, input_name="paths_or_folder")
    for index, item in enumerate(items):
        if item is not None and not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                f"paths_or_folder[{index}] is a {type(item).__name__}; embed() takes paths (or URLs), "
                "use PretrainedFeatureExtractor.transform for images in memory"
            )
    return [None if item is None else os.fspath(item) for item in items], None


def _prepare_extractor(extractor, *, model, weights, layer, batch_size, verbose, cache):
    from ..feature_extraction import PretrainedFeatureExtractor

    if extractor is None:
        extractor = PretrainedFeatureExtractor(
            model=model, weights=weights, layer=layer, batch_size=batch_size, verbose=verbose, cache=cache
        )
    else:
        extractor = copy.copy(extractor)  # never change the caller's estimator
        if cache is not None:
            extractor.set_params(cache=cache)
    # Failures go to the error column, never abort the run.
    extractor.set_params(on_error="nan")
    if not hasattr(extractor, "backbone_"):
        extractor.fit(["unused.jpg"])  # fit reads no image
    return extractor


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


def embed(
    paths_or_folder,
    out="embeddings.parquet",
    *,
    model="efficientnet_lite0",
    weights="DEFAULT",
    layer=None,
    batch_size="auto",
    chunk_size=256,
    extractor=None,
    cache=None,
    verbose=1,
):
    """Embed a folder or a list of image paths into a Parquet table, resuming if interrupted.

    Parameters
    ----------
    paths_or_folder : str, os.PathLike or sequence of paths
        A folder (``folder/class_name/image.jpg``: the class folder names
        become labels; or images directly in it: no labels), or paths and
        URLs (a list, a pandas Series, ...; missing values give error rows).
    out : str or os.PathLike, default="embeddings.parquet"
        The Parquet file to write. Until it is complete, rows go to
        ``out + ".partial"/``, from which an interrupted run resumes.
    model, weights, layer, batch_size :
        As for :class:`~sktransfer.PretrainedFeatureExtractor`, when
        `extractor` is None.
    chunk_size : int, default=256
        Images per part file: a kill loses at most this many.
    extractor : PretrainedFeatureExtractor or None, default=None
        Use this extractor (fitted or not) instead; it is not modified.
    cache : str, os.PathLike, EmbeddingStore or None, default=None
        An embedding store for the extractor (see its ``cache``); when
        None, a passed `extractor` keeps its own.
    verbose : int, default=1
        A progress bar counting images.

    Returns
    -------
    EmbedResult
        The path and how many rows were computed, resumed and failed.

    Notes
    -----
    Columns: ``path`` (str), ``label`` (str, or null), ``error`` (null, or
    why the image could not be read; its embedding is then NaN) and
    ``embedding`` (fixed-size list of float32). The schema metadata
    ``sktransfer`` holds the settings that produced the embeddings.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cats/a.png", "dogs/b.png"):
    ...     os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
    ...     Image.new("RGB", (16, 16)).save(os.path.join(root, name))
    >>> result = embed(root, os.path.join(root, "emb.parquet"), model="tiny_convnet", weights=None, verbose=0)
    >>> frame, X = read_embeddings(result.path)
    >>> frame["label"].tolist(), X.shape
    (['cats', 'dogs'], (2, 64))
    """
    from ..feature_extraction._streaming import EmbeddingLoop
    from ..storage._keys import describe_configuration
    from ..storage._store import as_store

    _pyarrow()
    out = os.fspath(out)
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    paths, labels = _list_images(paths_or_folder)
    labels = labels if labels is not None else [None] * len(paths)
    extractor = _prepare_extractor(
        extractor, model=model, weights=weights, layer=layer, batch_size=batch_size, verbose=verbose, cache=cache
    )
    config = describe_configuration(extractor)
    partial = out + ".partial"
    done = _open_partial(partial, _manifest(paths, labels, config))
    schema = _schema(extractor.n_features_out_, config)
    todo = [i for i in range(len(paths)) if i not in done]
    if todo:
        loop = EmbeddingLoop(extractor, [paths[i] for i in todo], chunk_size, store=as_store(extractor.cache))
        for start, block, failures in loop:
            positions = todo[start : start + len(block)]
            errors = [None] * len(block)
            for index, error in failures:
                errors[index - start] = error.reason
            _write_part(
                partial, positions, [paths[i] for i in positions], [labels[i] for i in positions], errors, block, schema
            )
    _join_parts(partial, out, schema)
    errors = _pyarrow().parquet.read_table(out, columns=["error"]).column(0)
    return EmbedResult(out, len(paths), len(todo), len(done), len(errors) - errors.null_count)


def read_embeddings(path):
    """Read a table written by :func:`embed`: ``(frame, X)``.

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

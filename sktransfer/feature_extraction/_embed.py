"""embed(): run an extractor over a collection of images into a Parquet table, resumable.

The table's format, its part files and the resumption after a kill belong
to :class:`sktransfer.storage.EmbeddingTableWriter`; this module lists the
images (a folder, with class folders as labels, or paths), prepares the
extractor, and feeds the writer chunk by chunk through the extraction loop
(:class:`._streaming.EmbeddingLoop`), which also uses the extractor's
embedding store when it has one.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from .._typing import StrPath
    from ..backbones._weights import Weights
    from ..storage import EmbeddingStore
    from ._extractor import PretrainedFeatureExtractor

__all__ = ["EmbedResult", "embed"]


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
    up_to_date : bool
        True when ``if_exists="reuse"`` found the table already written by
        the same images and settings, and nothing was computed.
    """

    path: str
    n_images: int
    n_computed: int
    n_resumed: int
    n_failed: int
    up_to_date: bool = False


def _list_images(paths_or_folder):
    """``(paths, labels)``: labels are class folder names, or None."""
    from ..datasets import list_image_files, load_image_folder
    from ..image import check_images

    if isinstance(paths_or_folder, (str, os.PathLike)):
        folder = os.fspath(paths_or_folder)
        if not os.path.isdir(folder):
            raise NotADirectoryError(f"paths_or_folder={folder!r} is not a folder; pass a folder or a list of paths")
        with os.scandir(folder) as entries:
            has_classes = any(e.is_dir() and not e.name.startswith(".") for e in entries)
        if has_classes:
            paths, labels = load_image_folder(folder)
            return list(paths), [str(label) for label in labels]
        paths = list_image_files(folder)
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
    from ._extractor import PretrainedFeatureExtractor

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


def embed(
    paths_or_folder: StrPath | Sequence[StrPath | None] | pd.Series,
    out: StrPath = "embeddings.parquet",
    *,
    model: str | nn.Module = "efficientnet_lite0",
    weights: Weights = "DEFAULT",
    layer: str | list[str] | None = None,
    batch_size: int | Literal["auto"] = "auto",
    chunk_size: int = 256,
    extractor: PretrainedFeatureExtractor | None = None,
    cache: StrPath | EmbeddingStore | None = None,
    verbose: int = 1,
    if_exists: Literal["replace", "reuse"] = "replace",
) -> EmbedResult:
    """Embed a folder or a list of image paths into a Parquet table, resuming if interrupted.

    Parameters
    ----------
    paths_or_folder : str, os.PathLike or sequence of paths
        A folder (``folder/class_name/image.jpg``: the class folder names
        become labels; or images directly in it: no labels), or paths and
        URLs (a list, a pandas Series, ...; missing values give error rows).
    out : str or os.PathLike, default="embeddings.parquet"
        The Parquet file to write (not a directory: refused before any
        work). Until it is complete, rows go to ``out + ".partial"/``, from
        which an interrupted run resumes, with the same or another
        `chunk_size`; an image rewritten since the interrupted run wrote its
        row (its size, modification time or inode changed) is embedded
        again, with one warning naming it. A second run on the same `out` while one runs is
        refused (a lock in that folder, naming the other run's process id;
        not on Windows). The file's mode follows the umask.
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
    if_exists : {"replace", "reuse"}, default="replace"
        When `out` already exists: ``"replace"`` computes the table again
        and replaces it; ``"reuse"`` returns at once when it was written
        from the same paths, labels and settings (the extractor's
        ``output_description()``; the images' contents are not compared),
        and raises a FileExistsError saying what differs otherwise. When
        `extractor` is None and the weights are a file, packaged or a
        seeded random network, the table also records the request (model,
        weights, layer, the weights file's size, times and inode, library
        versions, host), and a rerun with the same request returns before
        torch is imported or the network built.

    Returns
    -------
    EmbedResult
        The path and how many rows were computed, resumed and failed.

    Notes
    -----
    Columns: ``path`` (str), ``label`` (str, or null), ``error`` (null, or
    why the image could not be read; its embedding is then NaN) and
    ``embedding`` (fixed-size list of float32). The schema metadata
    ``sktransfer`` holds the settings that produced the embeddings (the
    extractor's ``output_description()``). The table is written by
    :class:`sktransfer.storage.EmbeddingTableWriter` and read by
    :func:`sktransfer.storage.read_embeddings`.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cats/a.png", "dogs/b.png"):
    ...     os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
    ...     Image.new("RGB", (16, 16)).save(os.path.join(root, name))
    >>> result = embed(root, os.path.join(root, "emb.parquet"), model="tiny_convnet", weights=None, verbose=0)
    >>> from sktransfer.storage import read_embeddings
    >>> frame, X = read_embeddings(result.path)
    >>> frame["label"].tolist(), X.shape
    (['cats', 'dogs'], (2, 64))
    """
    from ..storage import EmbeddingTableWriter
    from ._embed_existing import IF_EXISTS, finished_table_rows, finished_with_request, request_key

    EmbeddingTableWriter.check_installed()  # before any work
    EmbeddingTableWriter.check_out(out)
    out = os.fspath(out)
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be one of {IF_EXISTS}, got {if_exists!r}")
    paths, labels = _list_images(paths_or_folder)
    labels = labels if labels is not None else [None] * len(paths)
    request = request_key(model, weights, layer) if extractor is None else None
    if if_exists == "reuse":
        # Before torch is imported and the network built: a rerun of a finished table returns here.
        n_failed = finished_with_request(out, paths, labels, request)
        if n_failed is not None:
            return EmbedResult(out, len(paths), 0, 0, n_failed, up_to_date=True)
    from ._streaming import EmbeddingLoop  # imports torch: only once embed() computes

    extractor = _prepare_extractor(
        extractor, model=model, weights=weights, layer=layer, batch_size=batch_size, verbose=verbose, cache=cache
    )
    if if_exists == "reuse":
        finished = finished_table_rows(out, paths, labels, extractor.output_description())
        if finished is not None:
            n_failed = int(finished["error"].notna().sum())
            return EmbedResult(out, len(paths), 0, 0, n_failed, up_to_date=True)
    with EmbeddingTableWriter(
        out,
        paths=paths,
        labels=labels,
        description=extractor.output_description(),
        n_features=extractor.n_features_out_,
        request=request,
    ) as table:
        done = table.done
        todo = [i for i in range(len(paths)) if i not in done]
        if todo:
            loop = EmbeddingLoop(extractor, [paths[i] for i in todo], chunk_size, store=extractor._store())
            for start, block, failures in loop:
                positions = todo[start : start + len(block)]
                errors = [None] * len(block)
                for index, error in failures:
                    errors[index - start] = error.reason
                table.write(positions, [paths[i] for i in positions], [labels[i] for i in positions], errors, block)
        n_failed = table.finish()
    return EmbedResult(out, len(paths), len(todo), len(done), n_failed)

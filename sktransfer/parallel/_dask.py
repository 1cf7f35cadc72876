"""Embedding a dask collection of images partition by partition.

The extractor travels to the workers as its pickle, made once per call and
held by one key of the graph (a ``dask.delayed`` value), not inside every
task: each worker receives it once, and unpickles it once for all the
tasks of every call shipping the same bytes; its network, named rather
than carried (see :mod:`sktransfer.feature_extraction._pickling`), is
loaded once per worker process (what a worker sets up is in
:mod:`._worker`). Pickling a fitted extractor hashes its network's
tensors (tens of milliseconds for EfficientNet-Lite0), and dask would
otherwise pickle the extractor twice per computation, on the critical path
before the first task starts.

What comes back is one column per partition, not one per feature: a
Series named ``embedding`` of Arrow fixed-size lists of float32, the layout
:func:`sktransfer.embed` writes to Parquet. It keeps the input's index and
divisions, so embeddings line up with the other columns of the table they
came from, and partitions of unknown length need no extra pass. A frame of
1,280 float32 columns costs dask more than the network does: its size
estimate, serialisation, concatenation and the Parquet writer walk every
column of every partition, a cost per column and partition whatever the
number of rows. So the wide frame is only made on request
(``output="columns"``), and a dask Array of unknown chunk lengths on
``output="array"``.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Literal

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._extras import require
from ._worker import prepare_worker, processes_per_host, worker_copy

if TYPE_CHECKING:
    import dask.array as da
    import dask.dataframe as dd
    import distributed
    import pandas as pd

    from ..feature_extraction import PretrainedFeatureExtractor

OUTPUTS = ("embedding", "array", "columns")
COLUMN = "embedding"


def _check_output(output):
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}; got {output!r}")


def _list_dtype(width):
    import pandas as pd
    import pyarrow as pa

    return pd.ArrowDtype(pa.list_(pa.float32(), width))


def embedding_meta(
    extractor: PretrainedFeatureExtractor,
    index: pd.Index | None = None,
    *,
    output: Literal["embedding", "array", "columns"] = "embedding",
) -> pd.Series | pd.DataFrame | np.ndarray:
    """The empty result describing the embeddings, as ``dask_transform(..., output=output)`` answers them.

    What dask needs as ``meta`` of a computation returning embeddings, e.g.
    ``dask_ml.wrappers.ParallelPostFit(extractor.set_output(transform="pandas"),
    transform_meta=embedding_meta(extractor, output="columns"))``.

    Parameters
    ----------
    extractor : fitted PretrainedFeatureExtractor
    index : pandas.Index or None, default=None
        The (empty) index to give it, e.g. the input's ``_meta.index``.
    output : {"embedding", "array", "columns"}, default="embedding"
        ``"embedding"``: a Series named ``embedding`` of Arrow fixed-size
        lists of ``n_features_out_`` float32 (``pd.ArrowDtype``);
        ``"array"``: a float32 ndarray of shape ``(0, n_features_out_)``;
        ``"columns"``: a frame of ``n_features_out_`` float32 columns named
        as the features.

    Returns
    -------
    pandas.Series, numpy.ndarray or pandas.DataFrame
        Without rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.parallel import embedding_meta
    >>> images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None).fit(images)
    >>> embedding_meta(est).dtype
    fixed_size_list<item: float>[64][pyarrow]
    >>> embedding_meta(est, output="columns").shape, embedding_meta(est, output="array").shape
    ((0, 64), (0, 64))
    """
    import pandas as pd

    _check_output(output)
    check_is_fitted(extractor, "n_features_out_")
    width = int(extractor.n_features_out_)
    if output == "array":
        return np.empty((0, width), dtype=np.float32)
    index = pd.RangeIndex(0) if index is None else index[:0]
    if output == "embedding":
        return pd.Series(pd.array([], dtype=_list_dtype(width)), index=index, name=COLUMN)
    names = [str(n) for n in extractor.get_feature_names_out()]
    return pd.DataFrame({n: np.empty(0, dtype=np.float32) for n in names}, index=index)


def dask_transform(
    extractor: PretrainedFeatureExtractor,
    X: dd.Series | dd.DataFrame,
    *,
    output: Literal["embedding", "array", "columns"] = "embedding",
) -> dd.Series | da.Array | dd.DataFrame:
    """Embed a dask Series or one-column DataFrame of images on the workers.

    Parameters
    ----------
    extractor : fitted PretrainedFeatureExtractor
        Shipped to each worker once. On a ``distributed`` cluster each
        worker process runs the network, and decodes, with ``cores //
        processes on its machine`` threads (see :func:`worker_thread_budget`).
    X : dask.dataframe.Series or dask.dataframe.DataFrame with one column
        Paths (or other image items) to embed.
    output : {"embedding", "array", "columns"}, default="embedding"
        ``"embedding"``: one column, a dask Series named ``embedding`` of
        Arrow fixed-size lists of float32 (the layout :func:`sktransfer.embed`
        writes to Parquet), with the index and divisions of ``X``: assign it
        to a frame, ``to_parquet`` it, or ``np.stack`` a computed one.
        ``"array"``: a float32 dask Array of shape ``(n, n_features_out_)``,
        one chunk per partition, of unknown lengths until
        ``compute_chunk_sizes()``. ``"columns"``: a dask DataFrame of
        ``n_features_out_`` float32 columns named by
        ``extractor.get_feature_names_out()``; dask then pays a cost per
        column and partition (size estimates, serialisation, Parquet
        metadata) that at 1,280 columns outweighs the network on small
        partitions, so ask for it only when columns are what the next step
        needs.

    Returns
    -------
    dask.dataframe.Series, dask.array.Array or dask.dataframe.DataFrame
        Lazy: nothing runs until it is computed.

    Notes
    -----
    Partition size: each partition has a fixed cost in dask itself (its
    tasks' scheduling and hand-offs, messages, a Parquet part file: some
    10-20 ms of CPU), so partitions of a few hundred to a few thousand
    images keep it small next to the network, while a few partitions per
    worker thread let the last ones end together. Aim for 500-5,000 images per partition and at least 2-3
    partitions per worker thread (the user guide's page on scale has the
    measurements). :func:`warm_up` loads the network on every worker ahead
    of the first job.

    Examples
    --------
    >>> import os, tempfile
    >>> import dask.dataframe as dd, numpy as np, pandas as pd
    >>> from PIL import Image
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.parallel import dask_transform
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"{i}.png") for i in range(4)]
    >>> for i, path in enumerate(paths):
    ...     Image.new("RGB", (40, 40), (i * 60, 0, 0)).save(path)
    >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0).fit(paths)
    >>> X = dd.from_pandas(pd.Series(paths, name="path"), npartitions=2)
    >>> emb = dask_transform(est, X).compute(scheduler="sync")
    >>> emb.name, len(emb), np.allclose(np.stack(emb), est.transform(paths), atol=1e-5)
    ('embedding', 4, True)
    >>> dask_transform(est, X, output="array").compute(scheduler="sync").shape
    (4, 64)
    """
    dask = require("dask", "dask")
    dd = require("dask.dataframe", "dask")
    _check_output(output)
    check_is_fitted(extractor, "n_features_out_")
    if not isinstance(X, (dd.Series, dd.DataFrame)):
        raise TypeError(
            f"X must be a dask Series or one-column dask DataFrame of images, got {type(X).__name__}; "
            "in-memory images go to extractor.transform"
        )
    if isinstance(X, dd.DataFrame) and len(X.columns) != 1:
        raise ValueError(
            f"X is a dask DataFrame with {len(X.columns)} columns {list(X.columns)}; pass one column "
            "of images, e.g. X[[column_name]] or X[column_name]"
        )
    meta = embedding_meta(extractor, index=X._meta.index, output=output)
    shipped = dask.delayed(pickle.dumps(extractor), traverse=False)
    return X.map_partitions(_embed_partition, shipped, processes_per_host(), output, meta=meta)


def _embed_partition(part, blob, hosts, output):
    import pandas as pd

    prepare_worker(hosts)
    extractor = worker_copy(blob)
    values = np.ascontiguousarray(extractor.transform(part), dtype=np.float32)
    if output == "array":
        return values
    if output == "columns":
        names = [str(n) for n in extractor.get_feature_names_out()]
        return pd.DataFrame(values, index=part.index, columns=names)
    return pd.Series(embedding_array(values), index=part.index, name=COLUMN)


def embedding_array(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """An (n, d) float32 matrix as a pandas array of n Arrow fixed-size lists of d float32, without copying."""
    import pandas as pd
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.float32)
    lists = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    return pd.arrays.ArrowExtensionArray(lists)


def warm_up(client: distributed.Client, extractor: PretrainedFeatureExtractor) -> dict[str, float]:
    """Load ``extractor``'s network on every worker of ``client`` now, so that the first job does not wait.

    A fresh worker spends a few seconds on its first task (importing
    torch, unpickling the extractor, compiling its graph, a first batch);
    this runs those on every worker at once with ``client.run``, under the
    worker's thread budget, and keeps the copy for later
    :func:`dask_transform` calls of the same extractor. Workers that join
    later pay on their first task.

    Parameters
    ----------
    client : distributed.Client
    extractor : fitted PretrainedFeatureExtractor

    Returns
    -------
    dict
        Worker address -> seconds it took.
    """
    check_is_fitted(extractor, "n_features_out_")
    hosts = processes_per_host(client)
    return client.run(_warm_worker, pickle.dumps(extractor), hosts)


def _warm_worker(blob, hosts, dask_worker=None):
    import time

    start = time.perf_counter()
    prepare_worker(hosts, worker=dask_worker)
    extractor = worker_copy(blob)
    # A first batch of the CPU batch size (8) of small black images through the network.
    extractor.transform(np.zeros((8, 32, 32, 3), dtype=np.uint8))
    return time.perf_counter() - start

"""Embedding a dask collection of images partition by partition.

The extractor travels to the workers as one task of the graph (a
``dask.delayed`` value), not inside every task: each worker receives it
once, and its network, named rather than carried (see
:mod:`sktransfer.feature_extraction._pickling`), is loaded once per worker
process. The result is a dask DataFrame rather than a dask Array: it keeps
the input's index and divisions, so embeddings line up with the other
columns of the table they came from, and partitions of unknown length need
no extra pass to count them (``to_dask_array(lengths=True)`` makes an array).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._extras import require
from ._threads import apply_thread_budget, worker_thread_budget

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

    from ..feature_extraction import PretrainedFeatureExtractor


def embedding_meta(extractor: PretrainedFeatureExtractor, index: pd.Index | None = None) -> pd.DataFrame:
    """The empty frame describing the embeddings: float32 columns named as the features.

    What dask needs as ``meta`` of a computation returning embeddings, e.g.
    ``dask_ml.wrappers.ParallelPostFit(extractor, transform_meta=embedding_meta(extractor))``.

    Parameters
    ----------
    extractor : fitted PretrainedFeatureExtractor
    index : pandas.Index or None, default=None
        The (empty) index to give it, e.g. the input's ``_meta.index``.

    Returns
    -------
    pandas.DataFrame
        No rows; ``n_features_out_`` float32 columns.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.parallel import embedding_meta
    >>> images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None).fit(images)
    >>> meta = embedding_meta(est)
    >>> meta.shape, meta.dtypes.unique().tolist(), meta.columns[0]
    ((0, 64), [dtype('float32')], 'pretrainedfeatureextractor0')
    """
    import pandas as pd

    check_is_fitted(extractor, "n_features_out_")
    names = [str(n) for n in extractor.get_feature_names_out()]
    if index is None:
        index = pd.RangeIndex(0)
    return pd.DataFrame({n: np.empty(0, dtype=np.float32) for n in names}, index=index[:0])


def dask_transform(extractor: PretrainedFeatureExtractor, X: dd.Series | dd.DataFrame) -> dd.DataFrame:
    """Embed a dask Series or one-column DataFrame of images on the workers.

    Parameters
    ----------
    extractor : fitted PretrainedFeatureExtractor
        Shipped to each worker once. On a ``distributed`` cluster each
        worker process runs the network with ``cores // processes on its
        machine`` threads (see :func:`worker_thread_budget`).
    X : dask.dataframe.Series or dask.dataframe.DataFrame with one column
        Paths (or other image items) to embed.

    Returns
    -------
    dask.dataframe.DataFrame
        Float32 columns named by ``extractor.get_feature_names_out()``, the
        index and divisions of ``X``. Nothing runs until it is computed.

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
    >>> emb.shape, np.allclose(emb.to_numpy(), est.transform(paths), atol=1e-5)
    ((4, 64), True)
    """
    dask = require("dask", "dask")
    dd = require("dask.dataframe", "dask")
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
    meta = embedding_meta(extractor, index=X._meta.index)
    shipped = dask.delayed(extractor, traverse=False)
    return X.map_partitions(_embed_partition, shipped, _processes_per_host(), meta=meta)


def _embed_partition(part, extractor, processes_per_host):
    import pandas as pd

    threads = _budget_here(processes_per_host)
    if threads is not None:
        apply_thread_budget(threads)
    extractor = _worker_copy(extractor)
    values = np.asarray(extractor.transform(part), dtype=np.float32)
    names = [str(n) for n in extractor.get_feature_names_out()]
    return pd.DataFrame(values, index=part.index, columns=names)


_COPIES_LOCK = threading.Lock()
_COPIES = OrderedDict()  # sha256 of the pickle -> the extractor this worker already uses
_KEEP_COPIES = 2


def _worker_copy(extractor):
    """The copy of ``extractor`` this worker process already runs, if any.

    Every ``dask_transform`` call ships the extractor anew; reusing the copy
    a worker already holds keeps its engine (an ONNX Runtime session, built
    once) instead of building one per call. Keyed by the pickle's content,
    so only an identical extractor is reused; at most a few are kept.
    """
    with _COPIES_LOCK:
        if any(known is extractor for known in _COPIES.values()):
            return extractor  # the same delayed value, task after task: no need to hash it
    key = hashlib.sha256(pickle.dumps(extractor)).hexdigest()
    with _COPIES_LOCK:
        known = _COPIES.get(key)
        if known is None:
            known = _COPIES[key] = extractor
        _COPIES.move_to_end(key)
        while len(_COPIES) > _KEEP_COPIES:
            _COPIES.popitem(last=False)
    return known


def _processes_per_host():
    """Worker processes per machine of the current distributed client, or None."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed, or no client: local schedulers
        return None
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return dict(Counter(urlparse(address).hostname for address in workers))


def _budget_here(processes_per_host):
    """This worker's thread budget, or None outside a distributed worker."""
    if not processes_per_host:
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return worker_thread_budget(processes_per_host.get(urlparse(worker.address).hostname, 1))

"""Embedding images on many processes: dask, Ray, and thread budgets.

A fitted :class:`~sktransfer.PretrainedFeatureExtractor` whose weights can be
named pickles to a few kilobytes and rebuilds its network once per process,
so it can be shipped to every worker of a cluster. This subpackage embeds
collections where they live: :func:`dask_transform` for dask Series and
DataFrames, :class:`RayEmbedder` for ``ray.data`` datasets, and
:func:`worker_thread_budget` to keep workers x threads within the cores.
dask and Ray are optional (``pip install sktransfer[dask]`` /
``sktransfer[ray]``) and imported only when used.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "dask_transform": "._dask",
        "embedding_meta": "._dask",
        "RayEmbedder": "._ray",
        "worker_thread_budget": "._threads",
        "apply_thread_budget": "._threads",
    },
)

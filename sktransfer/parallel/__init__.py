"""Embedding images on many processes: dask, Ray, and thread budgets.

A fitted :class:`~sktransfer.PretrainedFeatureExtractor` whose weights can be
named pickles to a few kilobytes and rebuilds its network once per process,
so it can be shipped to every worker of a cluster. This subpackage embeds
collections where they live: :func:`dask_transform` for dask Series and
DataFrames (with :func:`warm_up` to load the network on every worker
first), :class:`RayEmbedder` for ``ray.data`` datasets, and
:func:`worker_thread_budget` to keep workers x threads within the cores.
dask and Ray are optional (``pip install sktransfer[dask]`` /
``sktransfer[ray]``) and imported only when used.
"""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._dask import dask_transform as dask_transform
    from ._dask import embedding_meta as embedding_meta
    from ._dask import warm_up as warm_up
    from ._ray import RayEmbedder as RayEmbedder
    from ._threads import apply_thread_budget as apply_thread_budget
    from ._threads import worker_thread_budget as worker_thread_budget

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

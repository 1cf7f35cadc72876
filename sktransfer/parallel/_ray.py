"""Embedding ``ray.data`` datasets with a pool of actors, one network each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sklearn.utils.validation import check_is_fitted

from ._extras import require
from ._threads import apply_thread_budget

if TYPE_CHECKING:
    import pandas as pd

    from ..feature_extraction import PretrainedFeatureExtractor


class RayEmbedder:
    """A callable class for ``ray.data.Dataset.map_batches``: a column of images in, embeddings out.

    Each actor of the pool unpickles the extractor once (a few kilobytes
    when its weights can be named) and loads its network once; every batch
    it is given then only decodes and embeds.

    Parameters
    ----------
    extractor : fitted PretrainedFeatureExtractor
    column : str, default="path"
        The column holding the images (paths, encoded bytes or arrays).
    output_column : str, default="embedding"
        The column the embeddings are written to, one float32 vector per row.
    threads : int or None, default=None
        Compute threads of the actor's process; None: the CPUs Ray assigned
        to the actor (``num_cpus`` of ``map_batches``), so that actors x
        threads match what Ray schedules.

    Examples
    --------
    A fitted ``extractor`` and a dataset with a ``path`` column::

        import ray
        from sktransfer.parallel import RayEmbedder

        ds = ray.data.from_items([{"path": p} for p in paths])
        out = ds.map_batches(
            RayEmbedder,
            fn_constructor_args=(extractor,),
            batch_size=64,
            num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=2),
        )
        embeddings = np.stack(out.to_pandas()["embedding"])
    """

    def __init__(
        self,
        extractor: PretrainedFeatureExtractor,
        *,
        column: str = "path",
        output_column: str = "embedding",
        threads: int | None = None,
    ) -> None:
        ray = require("ray", "ray")
        check_is_fitted(extractor, "n_features_out_")
        if threads is None:
            assigned = ray.get_runtime_context().get_assigned_resources().get("CPU") if ray.is_initialized() else None
            threads = max(1, int(assigned)) if assigned else None
        if threads is not None:
            apply_thread_budget(threads)
        self.extractor = extractor
        self.column = column
        self.output_column = output_column

    def __call__(self, batch: dict[str, NDArray[Any]] | pd.DataFrame) -> dict[str, NDArray[Any]] | pd.DataFrame:
        """Embed ``batch[column]``; return the batch with ``output_column`` added.

        ``batch`` is a dict of numpy arrays (``batch_format="numpy"``, Ray's
        default) or a pandas DataFrame (``batch_format="pandas"``).
        """
        if self.column not in batch:
            raise KeyError(f"the batch has no column {self.column!r} (it has {list(batch.keys())})")
        values = np.asarray(self.extractor.transform(batch[self.column]), dtype=np.float32)
        if isinstance(batch, dict):
            return {**batch, self.output_column: values}
        out = batch.copy()
        out[self.output_column] = list(values)
        return out

"""Bad inputs and faults of the parallel helpers, one row each.

Each row is (id, fault, expected): ``fault(ctx)`` sets the fault up and runs
the code under test; ``expected`` is either ``Raises(type, fragment)`` or a
``Policy(check)`` whose ``check(ctx, result)`` asserts the documented
behaviour. None of them starts a cluster: dask runs its local scheduler.
"""

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from _catalogue import Policy, Raises, assert_catalogue, check_row
from sklearn.exceptions import NotFittedError

from sktransfer import PretrainedFeatureExtractor
from sktransfer.parallel import apply_thread_budget, dask_transform, embedding_meta, worker_thread_budget

TINY = dict(model="tiny_convnet", weights=None, num_workers=0, batch_size=4)


@dataclass
class Ctx:
    monkeypatch: object
    images: list
    extractor: object


def _dask_series(ctx, n=2):
    dd = pytest.importorskip("dask.dataframe")
    return dd.from_pandas(pd.Series([f"img{i}.png" for i in range(n)], name="path"), npartitions=1)


def _without(module, extra_call):
    """Run ``extra_call`` as if ``module`` were not installed."""

    def fault(ctx):
        for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            ctx.monkeypatch.setitem(sys.modules, name, None)
        ctx.monkeypatch.setitem(sys.modules, module, None)
        return extra_call(ctx)

    return fault


class _FakeRayDataset:
    """Stands for a ray.data Dataset: only its type's module is looked at."""


_FakeRayDataset.__module__ = "ray.data.dataset"


def _series_with_a_gap_in_its_second_partition(ctx):
    # Found by the red team: the error named the item's row within its
    # partition (X[1]), not where it is in the collection.
    dd = pytest.importorskip("dask.dataframe")
    items = [ctx.images[i % len(ctx.images)] for i in range(6)]
    items = pd.Series(items[:4] + [None] + items[4:], index=range(100, 107), name="path")
    return dask_transform(ctx.extractor, dd.from_pandas(items, npartitions=2)).compute(scheduler="sync")


def _empty_policy(ctx, result):
    assert result.shape == (0, ctx.extractor.n_features_out_) and result.dtype == np.float32


def _same_budget(ctx, result):
    assert result == (1, 4, 1)


ROWS = [
    (
        "dask_series_to_transform",
        lambda ctx: ctx.extractor.transform(_dask_series(ctx)),
        Raises(TypeError, "sktransfer.parallel.dask_transform(extractor, X)"),
    ),
    (
        "dask_frame_to_fit",
        lambda ctx: PretrainedFeatureExtractor(**TINY).fit(_dask_series(ctx).to_frame()),
        Raises(TypeError, "is a dask DataFrame, a lazy collection"),
    ),
    (
        "ray_dataset_to_transform",
        lambda ctx: ctx.extractor.transform(_FakeRayDataset()),
        Raises(TypeError, "RayEmbedder"),
    ),
    (
        "dask_transform_of_a_list",
        lambda ctx: dask_transform(ctx.extractor, ["a.png"]),
        Raises(TypeError, "must be a dask Series or one-column dask DataFrame"),
    ),
    (
        "dask_transform_of_two_columns",
        lambda ctx: dask_transform(ctx.extractor, _dask_series(ctx).to_frame().assign(other=1)),
        Raises(ValueError, "dask DataFrame with 2 columns"),
    ),
    (
        "dask_transform_unfitted",
        lambda ctx: dask_transform(PretrainedFeatureExtractor(**TINY), _dask_series(ctx)),
        Raises(NotFittedError, "not fitted"),
    ),
    (
        "dask_transform_missing_item",
        _series_with_a_gap_in_its_second_partition,
        Raises(ValueError, "X at index 104 is missing"),
    ),
    (
        "dask_transform_unknown_output",
        lambda ctx: dask_transform(ctx.extractor, _dask_series(ctx), output="frame"),
        Raises(ValueError, "output must be one of 'embedding', 'array', 'columns'; got 'frame'"),
    ),
    (
        "embedding_meta_unknown_output",
        lambda ctx: embedding_meta(ctx.extractor, output="wide"),
        Raises(ValueError, "output must be one of 'embedding', 'array', 'columns'; got 'wide'"),
    ),
    (
        "dask_missing",
        _without("dask", lambda ctx: dask_transform(ctx.extractor, None)),
        Raises(ImportError, "pip install 'sktransfer[dask]'"),
    ),
    (
        "ray_missing",
        _without("ray", lambda ctx: __import__("sktransfer.parallel._ray", fromlist=["x"]).RayEmbedder(ctx.extractor)),
        Raises(ImportError, "pip install 'sktransfer[ray]'"),
    ),
    (
        "ray_batch_without_the_column",
        lambda ctx: pytest.importorskip("sktransfer.parallel._ray").RayEmbedder(ctx.extractor, threads=None)(
            {"file": np.array(["a.png"])}
        ),
        Raises(KeyError, "no column 'path'"),
    ),
    ("zero_workers", lambda ctx: worker_thread_budget(0), Raises(ValueError, "n_workers must be a positive int")),
    ("zero_cores", lambda ctx: worker_thread_budget(2, cores=0), Raises(ValueError, "cores must be a positive int")),
    ("threads_as_a_string", lambda ctx: apply_thread_budget("2"), Raises(ValueError, "threads must be a positive int")),
    (
        "more_workers_than_cores",
        lambda ctx: (
            worker_thread_budget(4, cores=2),
            worker_thread_budget(2, cores=8),
            worker_thread_budget(3, cores=3),
        ),
        Policy(_same_budget, "at least one thread each, never more than cores // workers"),
    ),
    (
        "transform_of_no_images",
        lambda ctx: ctx.extractor.transform(pd.Series([], dtype="string")),
        Policy(_empty_policy, "0 rows in, (0, n_features_out_) float32 out: what dask asks for its meta"),
    ),
    (
        "transform_of_an_empty_frame",
        lambda ctx: ctx.extractor.transform(pd.DataFrame({"path": pd.Series([], dtype=object)})),
        Policy(_empty_policy, "a one-column frame without rows, likewise"),
    ),
    (
        "fit_on_no_images",
        lambda ctx: PretrainedFeatureExtractor(**TINY).fit([]),
        Raises(ValueError, "X is empty; expected at least one image"),
    ),
]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for _ in range(3)]


@pytest.fixture(scope="module")
def extractor(images):
    return PretrainedFeatureExtractor(**TINY).fit(images)


def test_catalogue_is_large_and_ids_are_unique():
    assert_catalogue(ROWS, 8)


@pytest.mark.parametrize("row_id, fault, expected", ROWS, ids=[row[0] for row in ROWS])
def test_bad_input(row_id, fault, expected, monkeypatch, images, extractor):
    ctx = Ctx(monkeypatch=monkeypatch, images=images, extractor=extractor)
    check_row(fault, expected, ctx)

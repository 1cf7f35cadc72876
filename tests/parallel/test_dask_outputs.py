"""What dask_transform answers, on dask's local scheduler: one list column, an array, or columns."""

import numpy as np
import pandas as pd
import pytest
import torch

from sktransfer import PretrainedFeatureExtractor
from sktransfer.parallel import dask_transform, embedding_meta

dd = pytest.importorskip("dask.dataframe")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TINY = dict(model="tiny_convnet", weights=None, num_workers=0, batch_size=4)


@pytest.fixture(scope="module")
def extractor(paths):
    return PretrainedFeatureExtractor(**TINY).fit(paths)


def _series(paths, npartitions=3):
    index = pd.Index([f"row{i:02d}" for i in range(len(paths))], name="id")
    return dd.from_pandas(pd.Series(paths, index=index, name="path"), npartitions=npartitions)


def test_one_list_column_keeps_index_and_divisions_and_equals_transform(paths, extractor):
    X = _series(paths)
    lazy = dask_transform(extractor, X)
    assert lazy.name == "embedding" and lazy.divisions == X.divisions
    assert lazy.dtype == embedding_meta(extractor).dtype
    assert lazy.dtype.pyarrow_dtype == pa.list_(pa.float32(), extractor.n_features_out_)
    out = lazy.compute(scheduler="sync")
    assert out.index.tolist() == X.index.compute().tolist()
    np.testing.assert_allclose(np.stack(out), extractor.transform(paths), rtol=1e-5, atol=1e-5)


def test_the_column_goes_to_parquet_as_embed_writes_it(paths, extractor, tmp_path):
    from sktransfer.storage._table import _schema

    X = _series(paths)
    frame = X.to_frame().assign(embedding=dask_transform(extractor, X))
    frame.to_parquet(tmp_path / "out", compute_kwargs={"scheduler": "sync"})
    table = pq.read_table(tmp_path / "out")
    # The same Arrow type as the embedding column of embed()'s tables.
    assert table.schema.field("embedding").type.equals(_schema(extractor.n_features_out_, {}).field("embedding").type)
    # pandas cannot name a fixed-size list type in its own metadata: read with the Arrow types.
    back = pd.read_parquet(tmp_path / "out", dtype_backend="pyarrow")
    assert back.index.tolist() == [f"row{i:02d}" for i in range(len(paths))]
    np.testing.assert_allclose(np.stack(back["embedding"]), extractor.transform(paths), rtol=1e-5, atol=1e-5)


def test_array_and_columns_on_request(paths, extractor):
    X = _series(paths)
    expected = np.stack(dask_transform(extractor, X).compute(scheduler="sync"))
    array = dask_transform(extractor, X, output="array")
    assert array.dtype == np.float32 and array.shape[1] == extractor.n_features_out_
    np.testing.assert_array_equal(array.compute(scheduler="sync"), expected)
    columns = dask_transform(extractor, X, output="columns")
    assert list(columns.columns) == list(extractor.get_feature_names_out())
    assert columns.divisions == X.divisions
    np.testing.assert_array_equal(columns.compute(scheduler="sync").to_numpy(), expected)


def test_meta_of_each_output(extractor):
    index = pd.Index(["a"], name="id")
    column = embedding_meta(extractor, index=index)
    assert len(column) == 0 and column.index.name == "id" and column.name == "embedding"
    assert embedding_meta(extractor, output="array").shape == (0, extractor.n_features_out_)
    wide = embedding_meta(extractor, output="columns")
    assert wide.shape == (0, extractor.n_features_out_) and (wide.dtypes == np.float32).all()


def test_auto_decoder_threads_follow_the_compute_thread_budget():
    from sktransfer.image._batch_decoder import resolve_num_workers

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert resolve_num_workers("auto") == 1  # a worker's share of one core decodes on one thread
    finally:
        torch.set_num_threads(before)


def test_malloc_thresholds_are_left_alone_without_dask_s_variable(monkeypatch):
    from sktransfer.parallel import _worker

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setattr(_worker, "_MALLOC_DONE", False)
    assert _worker.relax_malloc_trim() is False

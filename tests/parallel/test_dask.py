"""Embedding on a dask.distributed cluster of 2 worker processes, equal to one process."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import PretrainedFeatureExtractor
from sktransfer.parallel import dask_transform, embedding_meta, warm_up, worker_thread_budget

# Two worker processes start and import torch: about 30 s for the module.
pytestmark = pytest.mark.slow

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

TINY = dict(model="tiny_convnet", weights=None, num_workers=0, batch_size=4)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def labels():
    return np.array([0, 1] * 6)


@pytest.fixture(scope="module")
def extractor(paths):
    return PretrainedFeatureExtractor(**TINY).fit(paths)


def _series(paths, npartitions=4):
    # A string index: the embeddings must come back under the input's labels.
    index = pd.Index([f"row{i:02d}" for i in range(len(paths))], name="id")
    return dd.from_pandas(pd.Series(paths, index=index, name="path"), npartitions=npartitions)


def test_dask_transform_on_the_cluster_equals_one_process(client, paths, extractor):
    X = _series(paths)
    expected = extractor.transform(paths)
    lazy = dask_transform(extractor, X)
    assert lazy.name == "embedding" and lazy.divisions == X.divisions
    out = lazy.compute()
    assert out.index.tolist() == [f"row{i:02d}" for i in range(len(paths))]
    np.testing.assert_allclose(np.stack(out), expected, rtol=1e-5, atol=1e-5)
    # A one-column DataFrame is the same input; the wide frame and the array on request.
    frame = dask_transform(extractor, X.to_frame(), output="columns").compute()
    assert list(frame.columns) == list(extractor.get_feature_names_out())
    np.testing.assert_array_equal(frame.to_numpy(), np.stack(out))
    array = dask_transform(extractor, X, output="array").compute()
    np.testing.assert_array_equal(array, np.stack(out))


def test_workers_raise_the_malloc_thresholds_dask_lowered(client, paths, extractor):
    from sktransfer.parallel import _worker

    # The nanny starts each worker with MALLOC_TRIM_THRESHOLD_ set (dask's default).
    assert all(client.run(lambda: "MALLOC_TRIM_THRESHOLD_" in __import__("os").environ).values())
    dask_transform(extractor, _series(paths)).compute()
    assert all(client.run(lambda: _worker._MALLOC_DONE).values())


def test_warm_up_loads_the_network_on_every_worker_once(client, paths):
    from sktransfer.backbones._shared import loaded_networks

    est = PretrainedFeatureExtractor(**TINY, pooling="max").fit(paths)
    seconds = warm_up(client, est)
    assert set(seconds) == set(client.scheduler_info(n_workers=-1)["workers"])
    builds = client.run(lambda: loaded_networks()[1])
    dask_transform(est, _series(paths, npartitions=6)).compute()
    assert client.run(lambda: loaded_networks()[1]) == builds  # nothing built again


def test_the_extractor_is_pickled_once_per_call_in_the_client(client, paths, extractor, monkeypatch, tmp_path):
    import dask

    # Each pickle of a fitted extractor hashes its network's tensors; dask, handed the
    # extractor itself, pickled it twice per computation before the first task started.
    pickled = []
    original = PretrainedFeatureExtractor.__getstate__

    def counting(self):
        pickled.append(self)
        return original(self)

    monkeypatch.setattr(PretrainedFeatureExtractor, "__getstate__", counting)
    embedding = dask_transform(extractor, _series(paths, npartitions=6))
    written = embedding.to_frame().to_parquet(tmp_path, compute=False)
    out, _ = dask.compute(embedding, written)  # kept and written: the graph goes out with two outputs
    assert len(pickled) == 1 and len(out) == len(paths)


def test_each_worker_loads_the_network_once_and_runs_within_its_thread_budget(client, paths, extractor):
    def set_threads(n):
        import torch

        torch.set_num_threads(n)

    def threads_and_builds():
        import torch

        from sktransfer.backbones._shared import loaded_networks

        return torch.get_num_threads(), loaded_networks()[1]

    # In tasks, not client.run: PyTorch's thread count is per thread (OpenMP),
    # and tasks run in the workers' executor threads.
    def on_each_worker(fn, *args):
        workers = list(client.scheduler_info(n_workers=-1)["workers"])
        futures = [client.submit(fn, *args, workers=[w], pure=False, allow_other_workers=False) for w in workers]
        return dict(zip(workers, client.gather(futures)))

    on_each_worker(set_threads, 3)  # more than 2 workers on this machine may use
    dask_transform(extractor, _series(paths, npartitions=12)).compute()
    seen = on_each_worker(threads_and_builds)
    hosts = {address.split("//")[1].rsplit(":", 1)[0] for address in seen}
    per_host = len(seen) // len(hosts)
    for threads, builds in seen.values():
        assert threads == worker_thread_budget(per_host)
        assert builds <= 1  # 12 tasks, but at most one network built per worker
    assert sum(builds for _, builds in seen.values()) >= 1


def test_parallel_post_fit_on_a_one_column_frame_of_paths(client, paths, labels, extractor):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X = _series(paths).to_frame()
    # Partitions answer DataFrames (set_output), described by embedding_meta.
    framed = clone(extractor).set_output(transform="pandas").fit(paths)
    wrapped = wrappers.ParallelPostFit(framed, transform_meta=embedding_meta(framed, output="columns"))
    out = wrapped.transform(X).compute()
    assert out.index.tolist() == [f"row{i:02d}" for i in range(len(paths))]
    np.testing.assert_allclose(out.to_numpy(), extractor.transform(paths), rtol=1e-5, atol=1e-5)
    pipe = make_pipeline(PretrainedFeatureExtractor(**TINY), LogisticRegression(max_iter=200))
    wrapped = wrappers.ParallelPostFit(pipe, predict_meta=np.array([], dtype=labels.dtype))
    wrapped.fit(paths, labels)
    np.testing.assert_array_equal(np.asarray(wrapped.predict(X).compute()), wrapped.estimator.predict(paths))


def test_parallel_post_fit_on_a_series_points_to_dask_transform(paths, extractor):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    # dask-ml hands a dask Series to the estimator itself: a clear TypeError.
    with pytest.raises(TypeError, match="dask_transform"):
        wrappers.ParallelPostFit(extractor).transform(_series(paths))


def test_grid_search_under_the_dask_joblib_backend(client, paths, labels):
    from joblib import parallel_backend

    pipe = make_pipeline(PretrainedFeatureExtractor(**TINY), LogisticRegression(max_iter=200))
    grid = {"logisticregression__C": [0.01, 10.0], "pretrainedfeatureextractor__pooling": [None, "max"]}
    local = GridSearchCV(pipe, grid, cv=2).fit(paths, labels)
    with parallel_backend("dask"):
        remote = GridSearchCV(pipe, grid, cv=2, n_jobs=-1).fit(paths, labels)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])

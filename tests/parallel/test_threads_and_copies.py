"""Thread budgets and the worker-side copies of shipped extractors."""

import pickle

import numpy as np
import pytest
import torch

from sktransfer import PretrainedFeatureExtractor
from sktransfer.parallel import _worker, apply_thread_budget, worker_thread_budget
from sktransfer.parallel._threads import usable_cores

TINY = dict(model="tiny_convnet", weights=None, num_workers=0)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(6)
    return [rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for _ in range(2)]


def test_the_budget_shares_the_cores_between_workers():
    assert [worker_thread_budget(n, cores=8) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert worker_thread_budget(1) == usable_cores()


def test_apply_thread_budget_sets_and_reports_torch_threads():
    before = torch.get_num_threads()
    try:
        assert apply_thread_budget(1) == before
        assert torch.get_num_threads() == 1
        assert apply_thread_budget(before) == 1
    finally:
        torch.set_num_threads(before)


def test_workers_unpickle_a_shipped_extractor_once(images, monkeypatch):
    monkeypatch.setattr(_worker, "_COPIES", type(_worker._COPIES)())
    est = PretrainedFeatureExtractor(**TINY).fit(images)
    blob = pickle.dumps(est)
    first = _worker.worker_copy(blob)
    assert type(first) is PretrainedFeatureExtractor and first is not est
    assert _worker.worker_copy(bytes(bytearray(blob))) is first  # shipped anew, the same bytes: the copy in use
    first.transform(images)
    assert _worker.worker_copy(blob) is first  # used (its network built): still the same
    assert pickle.dumps(est) == blob  # the same extractor, pickled again by the next call: the same bytes
    other = _worker.worker_copy(pickle.dumps(PretrainedFeatureExtractor(**TINY, pooling="max").fit(images)))
    assert other is not first and other.pooling == "max"
    for pooling in ("gem", "avgmax"):
        _worker.worker_copy(pickle.dumps(PretrainedFeatureExtractor(**TINY, pooling=pooling).fit(images)))
    assert len(_worker._COPIES) == _worker._KEEP_COPIES  # bounded


def test_a_worker_s_task_threads_share_its_budget_each_on_a_stream(monkeypatch):
    from types import SimpleNamespace

    from sktransfer.runtime import concurrent_callers, set_concurrent_callers

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # no allocator change in the test process
    worker = SimpleNamespace(address="tcp://127.0.0.1:4000", state=SimpleNamespace(nthreads=2))
    threads, callers = torch.get_num_threads(), concurrent_callers()
    try:
        got = _worker.prepare_worker({"127.0.0.1": 1}, worker=worker)
        assert got == max(1, usable_cores() // 2) == torch.get_num_threads()
        assert concurrent_callers() == 2
        assert _worker.prepare_worker(None, worker=worker) is None  # no client: nothing changed
    finally:
        torch.set_num_threads(threads)
        set_concurrent_callers(callers)

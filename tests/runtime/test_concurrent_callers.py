"""Concurrent callers: one OpenVINO stream, or ONNX Runtime session, per calling thread."""

import threading

import numpy as np
import pytest
import torch

from sktransfer.runtime import concurrent_callers, make_runner, set_concurrent_callers


class _Uint8Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x):
        return self.net(x.float() / 255)


@pytest.fixture
def two_callers():
    threads, previous = torch.get_num_threads(), set_concurrent_callers(2)
    torch.set_num_threads(1)
    yield
    set_concurrent_callers(previous)
    torch.set_num_threads(threads)


def _in_two_threads(runner, batch):
    outs = [None, None]

    def call(i):
        outs[i] = runner(batch)[0]

    workers = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outs


def test_openvino_compiles_one_stream_per_caller(two_callers):
    pytest.importorskip("openvino")
    runner = make_runner("openvino", _Uint8Net(), device=torch.device("cpu"), crop=12)
    assert int(runner.compiled.get_property("NUM_STREAMS")) == 2
    assert int(runner.compiled.get_property("INFERENCE_NUM_THREADS")) == 2  # 1 thread per caller
    batch = np.random.default_rng(0).integers(0, 256, (2, 3, 12, 12), dtype=np.uint8)
    first, second = _in_two_threads(runner, batch)
    np.testing.assert_array_equal(first, second)


def test_onnxruntime_opens_a_session_per_calling_thread(two_callers):
    pytest.importorskip("onnxruntime")
    runner = make_runner("onnxruntime", _Uint8Net(), device=torch.device("cpu"), crop=12)
    sessions = []
    original = runner._session

    def recording():
        session = original()
        # The session itself, not its id(): a thread's session dies with the
        # thread, and a later one may be allocated at the same address.
        sessions.append(session)
        return session

    runner._session = recording
    batch = np.zeros((2, 3, 12, 12), dtype=np.uint8)
    first, second = _in_two_threads(runner, batch)
    np.testing.assert_array_equal(first, second)
    assert len({id(session) for session in sessions}) == 2


def test_one_caller_is_the_default_and_bad_counts_are_refused():
    assert concurrent_callers() == 1
    for bad in (0, True, "2"):
        with pytest.raises(ValueError, match="n must be a positive int"):
            set_concurrent_callers(bad)

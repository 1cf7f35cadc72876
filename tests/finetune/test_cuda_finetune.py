"""FineTuneClassifier on a CUDA GPU: skipped without one (benchmarks/gpu_check.sh runs it there)."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from tiny_finetune import make_clf

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_fitted(tiny_backbone, data):
    X, y = data
    return make_clf(tiny_backbone, device="cuda", max_epochs=2).fit(X, y)


def test_auto_resolves_to_the_gpu_and_keeps_the_parameter(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, device="auto", max_epochs=1).fit(X, y)
    assert clf.device_.type == "cuda" and clf.get_params()["device"] == "auto"
    assert all(p.device.type == "cuda" for p in clf.module_.parameters())


def test_gpu_fit_learns_like_the_cpu_fit(gpu_fitted, tiny_backbone, data):
    X, y = data
    cpu = make_clf(tiny_backbone, device="cpu", max_epochs=2).fit(X, y)
    gpu_proba = gpu_fitted.predict_proba(X)
    assert gpu_proba.dtype == np.float32 and gpu_proba.shape == (len(y), 2)
    # Same seed, same batches: the two devices differ only by floating point.
    np.testing.assert_allclose(gpu_proba, cpu.predict_proba(X), atol=5e-2)
    assert np.mean(gpu_fitted.predict(X) == cpu.predict(X)) >= 0.9


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_fit_keeps_float32_weights_and_finite_loss(tiny_backbone, data, precision):
    X, y = data
    clf = make_clf(tiny_backbone, device="cuda", precision=precision, max_epochs=2).fit(X, y)
    assert all(p.dtype == torch.float32 for p in clf.module_.parameters())
    losses = clf.history[:, "train_loss"]
    assert losses and np.all(np.isfinite(losses))
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32 and np.allclose(proba.sum(1), 1, atol=1e-3)


def test_pickle_round_trip_on_the_gpu(gpu_fitted, data):
    X, _ = data
    restored = pickle.loads(pickle.dumps(gpu_fitted))
    np.testing.assert_allclose(restored.predict_proba(X), gpu_fitted.predict_proba(X), atol=1e-5)


def test_four_threads_predict_on_one_gpu_model(gpu_fitted, data):
    X, _ = data
    serial = gpu_fitted.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: gpu_fitted.predict_proba(X), range(8)))
    for out in outs:
        np.testing.assert_allclose(out, serial, atol=1e-5)

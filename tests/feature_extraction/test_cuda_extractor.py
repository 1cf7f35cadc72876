"""The extractor on a CUDA GPU: skipped without one (benchmarks/gpu_check.sh runs it there).

Each test compares the GPU's output with the same network on the CPU, so a
wrong device move, a dtype left in half precision or a stream race shows up
as a difference, not only as an exception.
"""

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sktransfer import PretrainedFeatureExtractor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0)


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def cpu_features(tiny_images):
    return PretrainedFeatureExtractor(**TINY, device="cpu").fit(tiny_images).transform(tiny_images)


@pytest.fixture(scope="module")
def gpu_extractor(tiny_images):
    return PretrainedFeatureExtractor(**TINY, device="cuda").fit(tiny_images)


def test_auto_device_picks_the_gpu_and_the_torch_engine(tiny_images):
    est = PretrainedFeatureExtractor(**TINY).fit(tiny_images)
    assert est._engine == "torch"
    assert est.transform(tiny_images[:2]).dtype == np.float32
    assert next(est._embedder.parameters()).device.type == "cuda"


def test_float32_on_the_gpu_matches_the_cpu(gpu_extractor, tiny_images, cpu_features):
    out = gpu_extractor.transform(tiny_images)
    assert out.dtype == np.float32 and out.shape == cpu_features.shape
    # cuDNN may run float32 convolutions in TF32: close, not bit-equal.
    np.testing.assert_allclose(out, cpu_features, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_half_precisions_run_on_the_gpu_and_return_float32(tiny_images, cpu_features, precision):
    est = PretrainedFeatureExtractor(**TINY, device="cuda", precision=precision).fit(tiny_images)
    assert est._precision == precision  # no fallback warning path on a GPU
    out = est.transform(tiny_images)
    assert out.dtype == np.float32
    assert cosine(out, cpu_features).min() > 0.99


def test_pickle_and_clone_on_the_gpu_give_the_same_features(gpu_extractor, tiny_images):
    out = gpu_extractor.transform(tiny_images)
    restored = pickle.loads(pickle.dumps(gpu_extractor))
    np.testing.assert_allclose(restored.transform(tiny_images), out, rtol=1e-5, atol=1e-6)
    refit = clone(gpu_extractor).fit(tiny_images)
    np.testing.assert_allclose(refit.transform(tiny_images), out, rtol=1e-5, atol=1e-6)


def test_a_gpu_pickle_runs_on_the_cpu_when_asked(gpu_extractor, tiny_images, cpu_features):
    restored = pickle.loads(pickle.dumps(gpu_extractor)).set_params(device="cpu")
    np.testing.assert_allclose(restored.transform(tiny_images), cpu_features, rtol=1e-4, atol=1e-5)


def test_four_threads_share_one_gpu_extractor(gpu_extractor, tiny_images):
    serial = gpu_extractor.transform(tiny_images)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: gpu_extractor.transform(tiny_images), range(8)))
    for out in outs:
        np.testing.assert_allclose(out, serial, rtol=1e-5, atol=1e-6)


@pytest.mark.real_weights
def test_pretrained_lite0_half_precisions_keep_the_embedding(tiny_images):
    full = PretrainedFeatureExtractor(device="cuda", num_workers=0).fit(tiny_images).transform(tiny_images)
    for precision in ("float16", "bfloat16"):
        half = PretrainedFeatureExtractor(device="cuda", num_workers=0, precision=precision)
        assert cosine(half.fit(tiny_images).transform(tiny_images), full).min() > 0.99

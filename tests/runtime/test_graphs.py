"""The exported-graph cache: where it lives, what its keys hold, how it heals."""

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite
from sktransfer.runtime import OnnxRuntimeRunner, TorchRunner, _graphs, exported_graph
from sktransfer.runtime._graphs import cache_root, cached_graph, graph_folder, graph_key

# The cached graphs serve the CPU engines: pinned, so a GPU machine tests them too.
TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, device="cpu")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(4)]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


class Exporter:
    def __init__(self, data=b"graph bytes"):
        self.data, self.calls = data, 0

    def __call__(self):
        self.calls += 1
        return self.data


def test_cache_folder_comes_from_the_environment_with_tilde(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SKTRANSFER_CACHE", raising=False)
    assert cache_root() == tmp_path / ".cache" / "sktransfer"
    monkeypatch.setenv("SKTRANSFER_CACHE", "~/elsewhere")
    assert graph_folder() == tmp_path / "elsewhere" / "onnx"


def test_key_changes_with_everything_that_changes_the_output():
    base = {
        "model": "m",
        "tensors": "ab",
        "layer": None,
        "pooling": None,
        "dtype": "float32",
        "preprocessing": {"crop_size": 224, "mean": (0.5,) * 3},
    }
    variants = [
        {"model": "n"},
        {"tensors": "ac"},
        {"layer": "stage1"},
        {"pooling": "gem"},
        {"dtype": "float16"},
        {"preprocessing": {"crop_size": 240, "mean": (0.5,) * 3}},
        {"preprocessing": {"crop_size": 224, "mean": (0.4,) * 3}},
    ]
    keys = {graph_key(base)} | {graph_key({**base, **v}) for v in variants}
    assert len(keys) == 1 + len(variants)
    assert graph_key(dict(reversed(list(base.items())))) == graph_key(base)  # order does not matter


def test_key_changes_with_library_versions(monkeypatch):
    description = {"model": "m"}
    before = graph_key(description)
    real = _graphs._library_versions
    monkeypatch.setattr(_graphs, "_library_versions", lambda: {**real(), "onnx": "0.0.1"})
    assert graph_key(description) != before


def test_entries_are_named_by_their_checksum_and_reused(cache):
    export = Exporter()
    assert cached_graph("k1", export) == b"graph bytes"
    assert cached_graph("k1", export) == b"graph bytes" and export.calls == 1
    (entry,) = cache.iterdir()
    assert entry.name == f"k1-{hashlib.sha256(b'graph bytes').hexdigest()}.onnx"


def test_no_key_means_memory_only(cache):
    export = Exporter()
    cached_graph(None, export)
    cached_graph(None, export)
    assert export.calls == 2 and not cache.exists()


def test_a_corrupt_entry_is_replaced_with_a_warning(cache):
    cached_graph("k2", Exporter())
    (entry,) = cache.iterdir()
    entry.write_bytes(b"graph bytez")  # same size, other bytes
    export = Exporter()
    with pytest.warns(UserWarning, match="is corrupt"):
        assert cached_graph("k2", export) == b"graph bytes"
    assert export.calls == 1 and [p.name for p in cache.iterdir()] == [entry.name]
    assert entry.read_bytes() == b"graph bytes"


def test_a_failed_write_leaves_no_temporary_file(cache, monkeypatch):
    def refuse(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_graphs.os, "replace", refuse)
    with pytest.warns(UserWarning, match="No space left"):
        assert cached_graph("k3", Exporter()) == b"graph bytes"
    assert list(cache.iterdir()) == []


def test_unwritable_folder_warns_once(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SKTRANSFER_CACHE", str(blocker))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for key in ("a", "b", "c"):
            assert cached_graph(key, Exporter()) == b"graph bytes"
    assert len([w for w in caught if "cannot use the graph cache" in str(w.message)]) == 1


def test_the_extractor_caches_reproducible_weights_once(images, cache):
    for _ in range(2):
        PretrainedFeatureExtractor(**TINY, engine="onnxruntime").fit(images)
    assert len(list(cache.glob("*.onnx"))) == 1
    PretrainedFeatureExtractor(**TINY, engine="onnxruntime", pooling="max").fit(images)
    assert len(list(cache.glob("*.onnx"))) == 2


def test_random_initialisation_is_not_cached_on_disk(images, cache):
    torch.manual_seed(0)
    est = PretrainedFeatureExtractor(model="efficientnet_lite0", weights=None, engine="torch", num_workers=0)
    assert est.fit(images[:1])._graph_description() is None


def test_graph_description_follows_the_weights_content(images, tmp_path):
    path = tmp_path / "w.pth"
    torch.manual_seed(0)
    state = build_efficientnet_lite("efficientnet_lite0").state_dict()
    torch.save(state, path)
    st = os.stat(path)
    params = dict(model="efficientnet_lite0", weights=str(path), engine="torch", num_workers=0)
    first = PretrainedFeatureExtractor(**params).fit(images[:1])._graph_description()
    state["bn1.bias"] = state["bn1.bias"] + 0.5
    torch.save(state, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert os.stat(path).st_size == st.st_size
    second = PretrainedFeatureExtractor(**params).fit(images[:1])._graph_description()
    assert first["weights"] != second["weights"]
    assert {k: v for k, v in first.items() if k != "weights"} == {k: v for k, v in second.items() if k != "weights"}
    assert first["preprocessing"]["crop_size"] == 224 and first["model"] == "efficientnet_lite0"


@pytest.mark.parametrize("runner", ["torch", "onnx"])
def test_engines_share_one_interface(images, runner, cache):
    est = PretrainedFeatureExtractor(**TINY, engine="torch").fit(images)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)[:, :, :32, :32].contiguous()
    if runner == "torch":
        engine = TorchRunner(est._embedder, torch.device("cpu"), "float32")
    else:
        engine = OnnxRuntimeRunner(exported_graph(est._embedder, 32, None))
    outputs = engine(batch)
    assert isinstance(outputs, list) and len(outputs) == 1  # one array per output
    out = outputs[0]
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (4, 64)
    with torch.inference_mode():
        expected = est._embedder(batch).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)
    assert not Path(cache).exists()

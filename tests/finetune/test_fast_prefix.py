"""The frozen prefix on ONNX Runtime: same numbers as PyTorch, used where it may be, cached on disk."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from skorch.dataset import ValidSplit
from tiny_finetune import make_clf, make_data

from sktransfer.backbones import get_backbone
from sktransfer.finetune import FineTuneNetwork
from sktransfer.finetune import _fast_prefix
from sktransfer.finetune._fast_prefix import FastPrefix, PrefixRunner, prefix_digest, resolve_inference_engine

pytest.importorskip("onnxruntime")  # an optional engine

ORT = {"inference_engine": "onnxruntime"}
# A backbone named by string: its weights are reproducible, so graphs go to the disk cache.
NAMED = {"model": "tiny_convnet", "weights": None}


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(1)
    net = FineTuneNetwork(get_backbone("tiny_convnet", weights=None), n_classes=3).eval()
    # Non-trivial batch-norm statistics, so that folding them into the
    # convolutions (which ONNX Runtime does) is really exercised.
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8))


class _Count:
    """Wraps a function and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def exports(monkeypatch):
    counter = _Count(_fast_prefix.export_prefix)
    monkeypatch.setattr(_fast_prefix, "export_prefix", counter)
    return counter


@pytest.fixture
def prefix_calls(monkeypatch):
    counter = _Count(PrefixRunner.__call__)
    monkeypatch.setattr(PrefixRunner, "__call__", lambda self, x: counter(self, x))
    return counter


# --------------------------------------------------------------- the runner


@pytest.mark.parametrize("stops", [["stage1"], ["stage1", "stage2"], ["head"], ["stage2", "pre_logits"]])
def test_runner_matches_torch_activations(network, images, stops):
    runner = PrefixRunner(network, stops, identity=None)
    outs = runner(images)
    assert len(outs) == len(stops)
    with torch.no_grad():
        prev, x = None, images
        for stop, out in zip(stops, outs):
            x = network.forward_between(x, prev, stop)
            prev = stop
            assert out.shape == x.shape and out.dtype == torch.float32
            torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-4)
            assert x.abs().max() > 0.1  # not a match of two near-zero tensors


def test_digest_covers_exactly_the_prefix(network):
    copy = pickle.loads(pickle.dumps(network))
    before = prefix_digest(copy, "stage2")
    with torch.no_grad():
        copy.backbone.groups["stage2"][0].weight.add_(1.0)  # after the prefix: no change
    assert prefix_digest(copy, "stage2") == before
    with torch.no_grad():
        copy.backbone.groups["stage1"][1].running_mean.add_(1.0)  # a buffer inside it: changed
    assert prefix_digest(copy, "stage2") != before


def test_resolve_engine():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_inference_engine("auto", cpu) == "onnxruntime"
    assert resolve_inference_engine("torch", cpu) == "torch"
    assert resolve_inference_engine("auto", gpu) == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_inference_engine("onnxruntime", gpu)


def test_auto_falls_back_silently_without_onnxruntime(monkeypatch, recwarn):
    monkeypatch.setattr(_fast_prefix, "onnxruntime_available", lambda: False)
    X, y = make_data(per_class=4)
    clf = make_clf(None, **NAMED, max_epochs=1).fit(X, y)
    assert clf.inference_engine_ == "torch"
    assert clf._prediction_prefix() is None
    assert not [w for w in recwarn if "onnx" in str(w.message).lower()]
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        make_clf(None, **NAMED, **ORT, max_epochs=1).fit(X, y)


# ----------------------------------------------------------------- fitting


@pytest.fixture(scope="module")
def pair():
    """The same fit with the prefix on ONNX Runtime and on PyTorch (validated run, then refit)."""
    X, y = make_data(per_class=8)
    params = {**NAMED, "unfreeze": 1, "head_epochs": 1, "max_epochs": 3, "patience": None,
              "train_split": ValidSplit(4, stratified=True)}
    fast = make_clf(None, **params, **ORT).fit(X, y)
    slow = make_clf(None, **params, inference_engine="torch").fit(X, y)
    return X, y, fast, slow


def test_fit_on_onnxruntime_trains_the_same_weights(pair):
    X, y, fast, slow = pair
    assert (fast.inference_engine_, slow.inference_engine_) == ("onnxruntime", "torch")
    assert fast._fast_prefix.built >= 1 and slow._fast_prefix.built == 0
    assert fast.best_epoch_ == slow.best_epoch_ == 3
    for (name, p1), (_, p2) in zip(fast.module_.state_dict().items(), slow.module_.state_dict().items()):
        if p1.dtype.is_floating_point:
            torch.testing.assert_close(p1, p2, rtol=1e-3, atol=1e-3, msg=name)
    np.testing.assert_allclose(fast.history[:, "train_loss"], slow.history[:, "train_loss"], rtol=1e-3)
    np.testing.assert_allclose(fast.predict_proba(X), slow.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))


def test_predict_runs_the_prefix_on_onnxruntime(pair, prefix_calls):
    X, _, fast, slow = pair
    proba = fast.predict_proba(X)
    assert prefix_calls.calls == int(np.ceil(len(X) / fast.batch_size))
    _, start = fast._prediction_prefix()
    assert start == "stage3"  # unfreeze=1: the last group trains
    # Prefix on the engine + trained suffix in torch == the whole trained network in torch.
    all_torch = pickle.loads(pickle.dumps(fast))
    all_torch._prediction_prefix = lambda: None
    calls = prefix_calls.calls
    np.testing.assert_allclose(proba, all_torch.predict_proba(X), atol=1e-4)
    assert prefix_calls.calls == calls
    slow.predict_proba(X)
    assert prefix_calls.calls == calls


def test_predict_falls_back_to_torch_when_the_prefix_changed(pair, prefix_calls):
    X, _, fast, _ = pair
    changed = pickle.loads(pickle.dumps(fast))
    with torch.no_grad():
        changed.module_.backbone.groups["stem"][0].weight.mul_(1.5)
    assert changed._prediction_prefix() is None
    changed.predict_proba(X)
    assert prefix_calls.calls == 0


def test_predict_in_reduced_precision_stays_in_torch(pair):
    _, _, fast, _ = pair
    lowered = pickle.loads(pickle.dumps(fast))
    lowered.dtype = "bfloat16"
    assert lowered._prediction_prefix() is None


def test_set_params_torch_after_fit_is_obeyed(pair, prefix_calls):
    X, _, fast, _ = pair
    switched = pickle.loads(pickle.dumps(fast)).set_params(inference_engine="torch")
    switched.predict_proba(X)
    assert prefix_calls.calls == 0


def test_pickle_rebuilds_the_runner_from_the_disk_cache(pair, exports):
    X, _, fast, _ = pair
    restored = pickle.loads(pickle.dumps(fast))
    assert restored.inference_engine_ == "onnxruntime"
    np.testing.assert_allclose(restored.predict_proba(X), fast.predict_proba(X), atol=1e-6)
    assert restored._prediction_prefix() is not None
    assert exports.calls == 0  # loaded, not exported again


def test_clone_keeps_the_parameter(pair):
    _, _, fast, _ = pair
    cloned = clone(fast)
    assert cloned.inference_engine == "onnxruntime" and not hasattr(cloned, "inference_engine_")
    assert cloned.set_params(inference_engine="torch").get_params()["inference_engine"] == "torch"


def test_second_fit_loads_the_graph_from_disk(exports, tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))
    X, y = make_data(per_class=4)  # arrays: nothing shared through the fit memo
    first = make_clf(None, **NAMED, **ORT, unfreeze=1, max_epochs=1).fit(X, y)
    assert exports.calls == 1
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    second = clone(first).fit(X, y)
    assert exports.calls == 1 and second._fast_prefix.built == 1  # built from the cached graph
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X), atol=1e-6)


def test_random_weights_stay_off_disk(exports, tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))
    X, y = make_data(per_class=4)
    module = get_backbone("tiny_convnet", weights=None)  # a module passed in: no reproducible identity
    make_clf(module, **ORT, unfreeze=1, max_epochs=1).fit(X, y)
    assert exports.calls == 1
    assert not list(tmp_path.rglob("*.onnx"))


def test_warm_start_trained_prefix_runs_in_torch(exports):
    X, y = make_data(per_class=4)
    clf = make_clf(None, **NAMED, **ORT, unfreeze=1, max_epochs=1, warm_start=True).fit(X, y)
    built = clf._fast_prefix.built
    clf.fit(X, y)  # the network has trained: its prefix is no longer "the pretrained one"
    assert clf._fast_prefix.built == built


def test_fast_prefix_pickles_without_sessions(network, images):
    fast = FastPrefix("onnxruntime", lambda: None)
    fast.runner(network, ["stage2"])
    restored = pickle.loads(pickle.dumps(fast))
    assert restored.built == 0 and restored.engine == "onnxruntime"
    runner = restored.runner_ending_at(network, "stage2")  # rebuilt on demand
    assert runner is not None and restored.built == 1
    assert restored.runner_ending_at(network, "stage1") is None  # no fit ran that prefix
    assert FastPrefix("torch", None).runner(network, ["stage2"]) is None


def test_forward_enters_where_told(network, images):
    embedding = network.forward_between(images, None, "head")
    with torch.no_grad():
        assert network.input_start is None
        torch.testing.assert_close(network(embedding, start="head"), network(images))
        torch.testing.assert_close(network(images, start=None), network(images))


def test_cpu_training_runs_channels_last(pair):
    _, _, fast, _ = pair
    convs = [m for m in fast.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not all(c.weight.is_contiguous() for c in convs)  # really the other layout

"""The frozen prefix on the graph engines (OpenVINO, ONNX Runtime): same numbers as PyTorch,
used where it may be, one graph cached on disk for both."""

import pickle
import threading

import numpy as np
import pytest
import torch
from sklearn.base import clone
from skorch.dataset import ValidSplit
from tiny_finetune import make_clf, make_data

from sktransfer.backbones import get_backbone
from sktransfer.finetune import FineTuneNetwork
from sktransfer.finetune._fast_prefix import FastPrefix
from sktransfer.finetune._prefix_graph import PrefixRunner, prefix_digest
from sktransfer.runtime import _engines, _graphs, engine_available, select_engine

pytest.importorskip("onnxruntime")  # an optional engine

ORT = {"engine": "onnxruntime"}
# Each graph engine, skipped where its optional package is missing.
GRAPH_ENGINES = [
    pytest.param(e, marks=pytest.mark.skipif(not engine_available(e), reason=f"{e} is not installed"))
    for e in ("onnxruntime", "openvino")
]
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
    counter = _Count(_graphs.export_onnx)
    monkeypatch.setattr(_graphs, "export_onnx", counter)
    return counter


@pytest.fixture
def prefix_calls(monkeypatch):
    counter = _Count(PrefixRunner.__call__)
    monkeypatch.setattr(PrefixRunner, "__call__", lambda self, x: counter(self, x))
    return counter


# --------------------------------------------------------------- the runner


@pytest.mark.parametrize("engine", GRAPH_ENGINES)
@pytest.mark.parametrize("stops", [["stage1"], ["stage1", "stage2"], ["head"], ["stage2", "pre_logits"]])
def test_runner_matches_torch_activations(network, images, stops, engine):
    runner = PrefixRunner(network, stops, identity=None, engine=engine)
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


def _installed(*engines):
    """An ``engine_available`` stand-in: only ``engines`` (and torch) are installed."""
    return lambda engine: engine == "torch" or engine in engines


def test_resolve_engine(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(_engines, "engine_available", _installed("openvino", "onnxruntime"))
    assert select_engine("auto", cpu) == "openvino"  # the extractor's order: OpenVINO first
    assert select_engine("onnxruntime", cpu) == "onnxruntime"
    assert select_engine("torch", cpu) == "torch"
    assert select_engine("auto", gpu) == "torch"
    for engine in ("onnxruntime", "openvino"):
        with pytest.raises(
            ValueError, match=f"engine='{engine}' runs an exported graph on the CPU; here the network is on 'cuda'"
        ):
            select_engine(engine, gpu)
    monkeypatch.setattr(_engines, "engine_available", _installed("onnxruntime"))
    assert select_engine("auto", cpu) == "onnxruntime"
    with pytest.raises(ImportError, match="pip install openvino onnx"):
        select_engine("openvino", cpu)
    monkeypatch.setattr(_engines, "engine_available", _installed())
    assert select_engine("auto", cpu) == "torch"


def test_auto_fits_on_onnxruntime_where_openvino_is_missing(monkeypatch):
    monkeypatch.setattr(_engines, "engine_available", _installed("onnxruntime"))
    X, y = make_data(per_class=4)
    clf = make_clf(None, **NAMED, unfreeze=1, max_epochs=1).fit(X, y)
    assert clf.engine_ == "onnxruntime" and clf._fast_prefix.built == 1
    runner, _ = clf._prediction_prefix()
    assert runner.engine == "onnxruntime"


def test_auto_falls_back_silently_without_graph_engines(monkeypatch, recwarn):
    monkeypatch.setattr(_engines, "engine_available", _installed())
    X, y = make_data(per_class=4)
    clf = make_clf(None, **NAMED, max_epochs=1).fit(X, y)
    assert clf.engine_ == "torch"
    assert clf._prediction_prefix() is None
    assert not [w for w in recwarn if "onnx" in str(w.message).lower()]
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        make_clf(None, **NAMED, **ORT, max_epochs=1).fit(X, y)


# ----------------------------------------------------------------- fitting


PAIR_PARAMS = {
    **NAMED,
    "unfreeze": 1,
    "head_epochs": 1,
    "max_epochs": 3,
    "patience": None,
    "train_split": ValidSplit(4, stratified=True),
}


@pytest.fixture(scope="module")
def torch_fit():
    X, y = make_data(per_class=8)
    return make_clf(None, **PAIR_PARAMS, engine="torch").fit(X, y)


@pytest.fixture(scope="module", params=GRAPH_ENGINES)
def pair(request, torch_fit):
    """The same fit with the prefix on a graph engine and on PyTorch (validated run, then refit)."""
    X, y = make_data(per_class=8)
    fast = make_clf(None, **PAIR_PARAMS, engine=request.param).fit(X, y)
    return X, y, fast, torch_fit


def test_fit_on_a_graph_engine_trains_the_same_weights(pair):
    X, y, fast, slow = pair
    assert fast.engine_ in ("onnxruntime", "openvino") and slow.engine_ == "torch"
    assert fast.engine_ == fast.engine
    assert fast._fast_prefix.built >= 1 and slow._fast_prefix.built == 0
    assert fast.best_epoch_ == slow.best_epoch_ == 3
    for (name, p1), (_, p2) in zip(fast.module_.state_dict().items(), slow.module_.state_dict().items()):
        if p1.dtype.is_floating_point:
            torch.testing.assert_close(p1, p2, rtol=1e-3, atol=1e-3, msg=name)
    np.testing.assert_allclose(fast.history[:, "train_loss"], slow.history[:, "train_loss"], rtol=1e-3)
    np.testing.assert_allclose(fast.predict_proba(X), slow.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))


def test_predict_runs_the_prefix_on_the_engine(pair, prefix_calls):
    X, _, fast, slow = pair
    proba = fast.predict_proba(X)
    assert prefix_calls.calls == int(np.ceil(len(X) / fast.batch_size))
    runner, start = fast._prediction_prefix()
    assert start == "stage3"  # unfreeze=1: the last group trains
    assert runner.engine == fast.engine_
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
    lowered.precision = "bfloat16"
    assert lowered._prediction_prefix() is None


def test_set_params_torch_after_fit_is_obeyed(pair, prefix_calls):
    X, _, fast, _ = pair
    switched = pickle.loads(pickle.dumps(fast)).set_params(engine="torch")
    switched.predict_proba(X)
    assert prefix_calls.calls == 0


def test_set_params_another_graph_engine_after_fit_is_obeyed(pair, prefix_calls):
    X, _, fast, _ = pair
    other = "openvino" if fast.engine_ == "onnxruntime" else "onnxruntime"
    if not engine_available(other):
        pytest.skip(f"{other} is not installed")
    switched = pickle.loads(pickle.dumps(fast)).set_params(engine=other)
    runner, start = switched._prediction_prefix()
    assert runner.engine == other and start == "stage3"
    np.testing.assert_allclose(switched.predict_proba(X), fast.predict_proba(X), atol=1e-4)
    assert switched.engine_ == fast.engine_  # what the fit resolved to


def test_a_torch_fit_predicts_on_a_graph_engine_named_after_fit(torch_fit, prefix_calls):
    X, _ = make_data(per_class=8)
    expected = torch_fit.predict_proba(X)
    assert prefix_calls.calls == 0
    switched = pickle.loads(pickle.dumps(torch_fit)).set_params(engine="onnxruntime")
    assert switched._prediction_prefix()[0].engine == "onnxruntime"
    np.testing.assert_allclose(switched.predict_proba(X), expected, atol=1e-4)
    assert prefix_calls.calls == int(np.ceil(len(X) / switched.batch_size))


def test_a_graph_engine_named_after_fit_must_be_installed(torch_fit, monkeypatch):
    switched = pickle.loads(pickle.dumps(torch_fit)).set_params(engine="onnxruntime")
    monkeypatch.setattr(_engines, "engine_available", lambda e: e == "torch")
    with pytest.raises(ImportError, match="engine='onnxruntime' needs the onnxruntime"):
        switched._prediction_prefix()


def test_pickle_rebuilds_the_runner_from_the_disk_cache(pair, exports):
    X, _, fast, _ = pair
    restored = pickle.loads(pickle.dumps(fast))
    assert restored.engine_ == fast.engine_
    assert restored._fast_prefix.built == 0  # the pickle carried no session nor compiled model
    np.testing.assert_allclose(restored.predict_proba(X), fast.predict_proba(X), atol=1e-6)
    assert restored._prediction_prefix()[0].engine == fast.engine_
    assert exports.calls == 0  # loaded, not exported again


def test_concurrent_predict_matches_serial(pair, prefix_calls):
    X, _, fast, _ = pair
    model = pickle.loads(pickle.dumps(fast))  # a fresh runner, first used by the threads
    expected = fast.predict_proba(X)
    results, errors = [[] for _ in range(4)], []

    def work(out):
        try:
            out.extend(model.predict_proba(X) for _ in range(3))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert model._fast_prefix.built == 1  # one runner, shared by the threads
    assert prefix_calls.calls == (1 + 12) * int(np.ceil(len(X) / fast.batch_size))
    for out in results:
        assert len(out) == 3
        for proba in out:
            np.testing.assert_array_equal(proba, expected)


def test_unpickled_where_the_auto_engine_is_missing_predicts_in_torch(pair, prefix_calls, monkeypatch):
    X, _, fast, _ = pair
    chosen = fast.engine_
    auto = pickle.loads(pickle.dumps(fast)).set_params(engine="auto")
    named = pickle.loads(pickle.dumps(fast))
    expected = fast.predict_proba(X)
    calls = prefix_calls.calls
    monkeypatch.setattr(_engines, "engine_available", lambda engine: engine != chosen)
    np.testing.assert_allclose(auto.predict_proba(X), expected, atol=1e-4)
    assert prefix_calls.calls == calls  # PyTorch ran the whole network
    with pytest.raises(ImportError, match=f"pip install {chosen}"):
        named.predict_proba(X)


def test_clone_keeps_the_parameter(pair):
    _, _, fast, _ = pair
    cloned = clone(fast)
    assert cloned.engine == fast.engine and not hasattr(cloned, "engine_")
    assert cloned.set_params(engine="torch").get_params()["engine"] == "torch"


def test_second_fit_loads_the_graph_from_disk(exports, tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))
    X, y = make_data(per_class=4)  # arrays: nothing shared through the fit memo
    first = make_clf(None, **NAMED, **ORT, unfreeze=1, max_epochs=1).fit(X, y)
    assert exports.calls == 1
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    second = clone(first).fit(X, y)
    assert exports.calls == 1 and second._fast_prefix.built == 1  # built from the cached graph
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X), atol=1e-6)


def test_engines_share_one_cached_graph(exports, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))
    X, y = make_data(per_class=4)
    params = {**NAMED, "unfreeze": 1, "max_epochs": 1}
    on_ort = make_clf(None, **params, **ORT).fit(X, y)
    on_ov = make_clf(None, **params, engine="openvino").fit(X, y)
    assert on_ov._fast_prefix.built == 1 and exports.calls == 1  # OpenVINO read ONNX Runtime's graph
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    np.testing.assert_allclose(on_ov.predict_proba(X), on_ort.predict_proba(X), atol=1e-4)


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


@pytest.mark.parametrize("engine", GRAPH_ENGINES)
def test_fast_prefix_pickles_without_sessions(network, images, engine):
    fast = FastPrefix(engine, lambda: None)
    fast.runner(network, ["stage2"])
    data = pickle.dumps(fast)
    assert len(data) < 1000  # names and digests only: no graph, session or compiled model
    restored = pickle.loads(data)
    assert restored.built == 0 and restored.engine == engine
    runner = restored.runner_ending_at(network, "stage2")  # rebuilt on demand
    assert runner is not None and restored.built == 1 and runner.engine == engine
    torch.testing.assert_close(runner(images)[0], fast.runner(network, ["stage2"])(images)[0])
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

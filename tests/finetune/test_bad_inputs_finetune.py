"""Catalogue of bad inputs and faults for FineTuneClassifier: one row each.

A row is ``(id, fault, expected)``: ``fault(ctx)`` provokes the fault given the
shared context (a fitted net, the data, the tiny backbone, a temporary
folder); ``expected`` is ``(exception type, message fragment)``, or None when
``fault`` itself asserts the documented policy (e.g. "a few-shot fit with
the defaults trains on every image, without a warning").
"""

import os
import pickle
import threading
import warnings
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit
from tiny_finetune import make_clf, make_data
from torch.utils.data import TensorDataset

from sktransfer import FineTuneClassifier, ImageLoadError, runtime
from sktransfer.finetune import set_fit_memo_limit
from sktransfer.runtime import _engines


@pytest.fixture(scope="module")
def ctx(tiny_backbone, data, fitted, tmp_path_factory):
    X, y = data
    return SimpleNamespace(X=X, y=y, backbone=tiny_backbone, fitted=fitted, tmp=tmp_path_factory.mktemp("bad"))


def _fresh(c, **params):
    return make_clf(c.backbone, **params)


def _with(y, position, value):
    y = np.array(y, dtype=object)
    y[position] = value
    return y


def _torch_dataset(c):
    return TensorDataset(torch.zeros(4, 3, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))


def _broken_file(c):
    bad = c.tmp / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    return [np.zeros((32, 32, 3), np.uint8)] * 3 + [str(bad)]


def _load_params_in_class_order(c, reverse):
    # Found by the red team: parameters loaded under another class order
    # were accepted, and every prediction named the other class.
    saved = c.tmp / f"params-{reverse}.pt"
    c.fitted.save_params(f_params=saved)
    classes = list(c.fitted.classes_)
    resumed = _fresh(c, classes=classes[::-1] if reverse else classes).initialize()
    resumed.load_params(f_params=saved)
    np.testing.assert_array_equal(resumed.predict(c.X), c.fitted.predict(c.X))


def _few_shot_policy(c):
    # The default holds nothing out, so two images per class train, all of them.
    X, y = make_data(per_class=2)
    clf = make_clf(c.backbone, train_split=FineTuneClassifier().train_split, max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
    assert clf.validating_ is False and len(clf.history) == 1
    assert sum(b["train_batch_size"] for b in clf.history[-1, "batches"]) == len(X)


class _InterruptSecondRun(Callback):
    def on_train_begin(self, net, **kwargs):
        self.runs = getattr(self, "runs", 0) + 1

    def on_epoch_end(self, net, **kwargs):
        if self.runs == 2:
            raise KeyboardInterrupt


def _interrupted_refit_policy(c):
    clf = make_clf(
        c.backbone,
        max_epochs=2,
        train_split=ValidSplit(4, stratified=True),
        patience=None,
        callbacks=[("stop", _InterruptSecondRun())],
    )
    with pytest.warns(UserWarning, match="refit was interrupted"):
        clf.fit(c.X, c.y)
    assert clf.interrupted_ and clf.best_epoch_ is None and "valid_loss" in clf.history[-1]


def _threads_policy(c):
    expected = c.fitted.predict_proba(c.X[:2])
    results, errors = [], []

    def work():
        try:
            results.extend(c.fitted.predict_proba(c.X[:2]) for _ in range(5))
        except Exception as exc:  # noqa: BLE001 -- counted
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 15
    assert all(np.array_equal(r, expected) for r in results)


def _set_params_fitted(c, **params):
    clone_ = clone(c.fitted)
    clone_.fit(c.X, c.y)
    return clone_.set_params(**params)


def _global_rng_policy(c):
    state = torch.random.get_rng_state()
    _fresh(c, max_epochs=1, random_state=3).fit(c.X, c.y)
    assert torch.equal(torch.random.get_rng_state(), state)


def _keeps_auto_device_policy(c):
    clf = _fresh(c, device="auto", max_epochs=1).fit(c.X, c.y)
    assert clf.get_params()["device"] == "auto" and clf.device_.type in {"cpu", "cuda", "mps"}


def _installed(*engines):
    """Pretend only ``engines`` (and torch) are installed."""
    return mock.patch.object(_engines, "engine_available", lambda e: e == "torch" or e in engines)


def _fit_with_engines(c, engine, *installed):
    with _installed(*installed):
        return _fresh(c, model="tiny_convnet", engine=engine, max_epochs=1).fit(c.X, c.y)


def _auto_policy(installed, expected):
    def check(c):
        if expected != "torch":
            pytest.importorskip(expected)  # an optional engine, really run here
        clf = _fit_with_engines(c, "auto", *installed)
        assert clf.engine_ == expected
        assert (clf._prediction_prefix() is None) == (expected == "torch")

    return check


def _unpickled_without_engine(c, engine, param):
    """A model fitted on ``engine``, predicting where ``engine`` is not installed."""
    pytest.importorskip(engine)
    clf = _fresh(c, model="tiny_convnet", engine=engine, unfreeze=1, max_epochs=1).fit(c.X, c.y)
    expected = clf.predict_proba(c.X)
    restored = pickle.loads(pickle.dumps(clf)).set_params(engine=param)
    with _installed():
        proba = restored.predict_proba(c.X)
        assert restored._prediction_prefix() is None  # "auto": PyTorch runs the prefix
    np.testing.assert_allclose(proba, expected, atol=1e-4)


def _named_after_fit_without(engine):
    """A PyTorch fit told to predict on ``engine`` (set_params), where ``engine`` is not installed."""
    X, y = make_data(per_class=4)
    clf = make_clf(None, model="tiny_convnet", engine="torch", unfreeze=1, max_epochs=1).fit(X, y)
    clf.set_params(engine=engine)
    with _installed():
        return clf.predict_proba(X)


def _corrupt_graph_policy(c):
    pytest.importorskip("onnxruntime")
    folder = c.tmp / "graphs"
    params = {"model": "tiny_convnet", "engine": "onnxruntime", "unfreeze": 1, "max_epochs": 1}
    with mock.patch.dict(os.environ, {"SKTRANSFER_CACHE": str(folder)}):
        first = _fresh(c, **params).fit(c.X, c.y)
        (entry,) = (folder / "onnx").glob("*.onnx")
        entry.write_bytes(entry.read_bytes()[:100])  # a truncated write
        with pytest.warns(UserWarning, match="is corrupt"):
            second = _fresh(c, **params).fit(c.X, c.y)
    np.testing.assert_allclose(first.predict_proba(c.X), second.predict_proba(c.X), atol=1e-6)


def _named_fit(c, **params):
    return _fresh(c, **{"model": "tiny_convnet", "unfreeze": 1, "max_epochs": 1, **params}).fit(c.X, c.y)


def _tensor_bytes(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _skops_policy(c):
    # Found by the red team: skops listed 21 untrusted types (builtins.print, functools.partial,
    # torch.optim.adamw.AdamW...), so the README's advice made a fitted model unloadable.
    sio = pytest.importorskip("skops.io")
    clf = _named_fit(c)
    data = sio.dumps(clf)
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted == ["sktransfer.finetune._classifier.FineTuneClassifier"], untrusted
    restored = sio.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict_proba(c.X), clf.predict_proba(c.X))


def _pickle_size_policy(c):
    # Found by the red team: the joblib pickle was about twice the network (the optimizer's moments, the
    # network pickled as objects); without warm_start nothing but the network's tensors is large.
    # Every tensor trained from the first epoch: the optimizer holds two moments of each.
    clf = _named_fit(c, unfreeze="all", head_epochs=0)
    size, network = len(pickle.dumps(clf)), _tensor_bytes(clf.module_)
    assert size < 1.2 * network + 20_000, (size, network)


def _payload_as_network(c):
    # Found while fixing the row above: the saved tensors are read with torch.load(weights_only=True), so a
    # pickled payload in their place is refused, not run.
    state = _named_fit(c).__getstate__()
    state["fitted"]["network"] = pickle.dumps(mock.sentinel.payload)
    FineTuneClassifier.__new__(FineTuneClassifier).__setstate__(state)


ROWS = [
    # --- labels ---
    (
        "y-contains-None",
        lambda c: _fresh(c).fit(c.X, _with(c.y, 3, None)),
        (ValueError, "y contains None at position(s) [3]"),
    ),
    ("y-mixed-types", lambda c: _fresh(c).fit(c.X, _with(c.y, 0, 7)), (ValueError, "y mixes label types")),
    ("y-one-class", lambda c: _fresh(c).fit(c.X, ["ant"] * 16), (ValueError, "at least 2 classes")),
    ("y-wrong-length", lambda c: _fresh(c).fit(c.X, c.y[:15]), (ValueError, "X has 16 images but y has 15")),
    ("y-None", lambda c: _fresh(c).fit(c.X, None), (ValueError, "requires y to be passed")),
    ("score-unseen-label", lambda c: c.fitted.score(c.X, _with(c.y, 2, "wasp")), (ValueError, "never seen in fit")),
    (
        "class-weight-unknown-label",
        lambda c: _fresh(c, class_weight={"moth": 2.0}).fit(c.X, c.y),
        (ValueError, "class_weight has labels that are not in y"),
    ),
    (
        "load-params-other-class-order",
        lambda c: _load_params_in_class_order(c, reverse=True),
        (ValueError, "these parameters were trained for the classes"),
    ),
    # --- parameters ---
    (
        # Found by the red team: skorch rebuilt the network, untrained, while
        # the estimator still reported fitted.
        "set-module-param-after-fit",
        lambda c: pickle.loads(pickle.dumps(c.fitted)).set_params(module__dropout=0.3),
        (ValueError, "would build a new, untrained network"),
    ),
    ("set-params-lr-decay-fitted", lambda c: _set_params_fitted(c, lr_decay=2.0), (InvalidParameterError, "lr_decay")),
    ("set-params-lr-negative-fitted", lambda c: _set_params_fitted(c, lr=-1.0), (InvalidParameterError, "'lr'")),
    (
        "set-params-unfreeze-string-fitted",
        lambda c: _set_params_fitted(c, unfreeze="most"),
        (InvalidParameterError, "unfreeze"),
    ),
    (
        "set-params-precision-checked-at-fit",
        lambda c: _fresh(c).set_params(precision="float64").fit(c.X, c.y),
        (InvalidParameterError, "'precision' parameter"),
    ),
    (
        "batch-size-unknown-string",
        lambda c: _fresh(c, batch_size="large").fit(c.X, c.y),
        (InvalidParameterError, "'batch_size' parameter"),
    ),
    (
        "unfreeze-too-large",
        lambda c: _fresh(c, unfreeze=4).fit(c.X, c.y),
        (ValueError, "unfreeze=4 but tiny has only 3"),
    ),
    ("device-nonsense", lambda c: _fresh(c, device="nonsense").fit(c.X, c.y), (ValueError, "not a valid torch device")),
    (
        "engine-unknown",
        lambda c: _fresh(c, engine="tensorrt").fit(c.X, c.y),
        (InvalidParameterError, "'engine' parameter"),
    ),
    (
        "engine-none",
        lambda c: _fresh(c, engine=None).fit(c.X, c.y),
        (InvalidParameterError, "'engine' parameter"),
    ),
    (
        "set-params-engine-fitted",
        lambda c: _set_params_fitted(c, engine="gpu"),
        (InvalidParameterError, "'engine' parameter"),
    ),
    (
        "engine-onnxruntime-missing",
        lambda c: _fit_with_engines(c, "onnxruntime", "openvino"),
        (ImportError, "pip install onnxruntime"),
    ),
    (
        "engine-onnxruntime-on-gpu",
        lambda c: runtime.select_engine("onnxruntime", torch.device("cuda")),
        (ValueError, "runs an exported graph on the CPU"),
    ),
    (
        "engine-openvino-missing",
        lambda c: _fit_with_engines(c, "openvino", "onnxruntime"),
        (ImportError, "engine='openvino' needs the openvino and onnx packages: pip install openvino"),
    ),
    (
        "engine-openvino-on-gpu",
        lambda c: runtime.select_engine("openvino", torch.device("cuda")),
        (ValueError, "engine='openvino' runs an exported graph on the CPU; here the network is on 'cuda'"),
    ),
    # On a GPU the device is the error even where the package is missing: installing it would not help.
    (
        "engine-openvino-on-gpu-not-installed",
        lambda c: _installed()(runtime.select_engine)("openvino", torch.device("cuda")),
        (ValueError, "engine='openvino' runs an exported graph on the CPU; here the network is on 'cuda'"),
    ),
    (
        "engine-named-after-fit-not-installed",
        lambda c: _named_after_fit_without("onnxruntime"),
        (ImportError, "pip install onnxruntime"),
    ),
    (
        "engine-openvino-missing-at-predict",
        lambda c: _unpickled_without_engine(c, "openvino", "openvino"),
        (ImportError, "pip install openvino"),
    ),
    ("fit-memo-negative-bound", lambda c: set_fit_memo_limit(-5), (ValueError, "max_bytes must be >= 0")),
    # Found in review: skorch kept frozen__* as a setting of its own, so a search over them changed nothing.
    (
        "frozen-nested-parameter-without-a-recipe",
        lambda c: _fresh(c).set_params(frozen__n_views=2),
        (ValueError, "frozen is None (the default recipe)"),
    ),
    (
        "frozen-not-a-frozen-feature-classifier",
        lambda c: _fresh(c, frozen=LogisticRegression(), check_folds=2).fit(c.X, c.y),
        (InvalidParameterError, "'frozen' parameter"),
    ),
    # --- calls before fit ---
    ("score-before-fit", lambda c: _fresh(c).score(c.X, c.y), (NotFittedError, "not fitted")),
    ("predict-before-fit", lambda c: _fresh(c).predict(c.X), (NotFittedError, "not fitted")),
    ("predict-proba-before-fit", lambda c: _fresh(c).predict_proba(c.X), (NotFittedError, "not fitted")),
    ("initialize-before-fit-without-classes", lambda c: _fresh(c).initialize(), (NotFittedError, "classes=")),
    # --- inputs ---
    ("fit-torch-dataset", lambda c: _fresh(c).fit(_torch_dataset(c), None), (TypeError, "not a torch Dataset")),
    (
        "partial-fit-torch-dataset",
        lambda c: _fresh(c).partial_fit(_torch_dataset(c), None),
        (TypeError, "not a torch Dataset"),
    ),
    ("predict-torch-dataset", lambda c: c.fitted.predict_proba(_torch_dataset(c)), (TypeError, "not a torch Dataset")),
    ("empty-X", lambda c: _fresh(c).fit([], []), (ValueError, "X is empty")),
    (
        "unreadable-image",
        lambda c: _fresh(c).fit(_broken_file(c), ["a", "b", "a", "b"]),
        (ImageLoadError, "broken.jpg"),
    ),
    (
        "augment-returns-int",
        lambda c: _fresh(c, augment=lambda im: 3, max_epochs=1).fit(c.X, c.y),
        (TypeError, "augment must return"),
    ),
    # --- documented policies ---
    ("few-shot-default-split", _few_shot_policy, None),
    ("load-params-same-class-order", lambda c: _load_params_in_class_order(c, reverse=False), None),
    ("engine-auto-without-graph-engines", _auto_policy((), "torch"), None),
    ("engine-auto-without-openvino", _auto_policy(("onnxruntime",), "onnxruntime"), None),
    ("engine-auto-with-openvino", _auto_policy(("openvino", "onnxruntime"), "openvino"), None),
    ("engine-auto-missing-after-unpickle", lambda c: _unpickled_without_engine(c, "openvino", "auto"), None),
    ("corrupt-cached-prefix-graph", _corrupt_graph_policy, None),
    ("interrupted-refit", _interrupted_refit_policy, None),
    ("threads-predict-proba", _threads_policy, None),
    ("random-state-global-rng", _global_rng_policy, None),
    ("device-auto-stays-auto", _keeps_auto_device_policy, None),
    ("skops-lists-only-the-classifier", _skops_policy, None),
    ("pickle-about-the-network-size", _pickle_size_policy, None),
    ("saved-network-not-tensors", _payload_as_network, (ValueError, "saved network of this FineTuneClassifier")),
]


@pytest.mark.parametrize("fault,expected", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input(ctx, fault, expected):
    if expected is None:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            fault(ctx)
        return
    error, fragment = expected
    with pytest.raises(error) as info:
        fault(ctx)
    assert fragment in str(info.value)

"""FineTuneClassifier without hidden global effects, from several threads, on few images, interrupted."""

import ast
import pathlib
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit
from tiny_finetune import make_clf, make_data

import sktransfer.finetune as finetune_pkg
from sktransfer import FineTuneClassifier
from sktransfer.finetune import set_fit_memo_limit
from sktransfer.finetune._fit_memo import FIT_MEMO, FitMemo


def _weights(clf):
    return {name: t.detach().clone() for name, t in clf.module_.state_dict().items()}


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


# ------------------------------------------------------- global RNG untouched


def test_random_state_leaves_the_global_generator_alone(tiny_backbone, data):
    X, y = data
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    first = make_clf(tiny_backbone, augment="light", max_epochs=2, head_init="random").fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.rand(7)  # the caller's generator moves on; the fit must not care
    second = make_clf(tiny_backbone, augment="light", max_epochs=2, head_init="random").fit(X, y)
    _assert_same_weights(_weights(first), _weights(second))
    other = make_clf(tiny_backbone, augment="light", max_epochs=2, head_init="random", random_state=1).fit(X, y)
    assert not torch.equal(other.module_.head[-1].weight, first.module_.head[-1].weight)


# ----------------------------------------------------------------- fit memo


def test_fit_memo_is_bounded_in_bytes():
    memo = FitMemo(max_bytes=1000, idle_seconds=60)
    for k in range(3):
        memo.put(("k", k), torch.zeros(100, dtype=torch.float32))  # 400 bytes each
    assert len(memo) == 2 and memo.nbytes == 800
    assert memo.get(("k", 0)) is None  # least recently used went first
    assert memo.get(("k", 2)) is not None and memo.hits == 1
    memo.put("big", torch.zeros(300))  # 1200 bytes: larger than the bound, not kept
    assert memo.get("big") is None and memo.nbytes == 800
    memo.set_max_bytes(500)
    assert len(memo) == 1 and memo.get(("k", 2)) is not None  # the most recent one stays
    memo.clear()


def test_set_fit_memo_limit_returns_and_checks(monkeypatch):
    previous = set_fit_memo_limit(12345, idle_seconds=7)
    try:
        assert (FIT_MEMO.max_bytes, FIT_MEMO.idle_seconds) == (12345, 7.0)
        with pytest.raises(ValueError, match="max_bytes must be >= 0"):
            set_fit_memo_limit(-1)
    finally:
        assert set_fit_memo_limit(*previous) == (12345, 7.0)


@pytest.fixture
def image_paths(data, tmp_path):
    from PIL import Image

    X, y = data
    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths, y


def test_fit_memo_timer_releases_idle_entries():
    memo = FitMemo(max_bytes=10_000, idle_seconds=0.05)
    memo.put("a", torch.zeros(10))
    assert len(memo) == 1
    deadline = time.monotonic() + 5
    while len(memo) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(memo) == 0  # released by the daemon timer, nobody asked
    assert memo._timer is None  # and no timer left running


def test_fit_memo_releases_what_a_fit_left(image_paths):
    paths, y = image_paths
    FIT_MEMO.clear()
    previous = set_fit_memo_limit(idle_seconds=600)
    try:
        make_clf(None, model="tiny_convnet", unfreeze=1, max_epochs=1).fit(paths, y)
        assert len(FIT_MEMO) >= 2 and FIT_MEMO.nbytes > 0  # decoded crops and activations
        assert FIT_MEMO.release_idle() == 0  # used just now: kept
        set_fit_memo_limit(idle_seconds=0)
        assert FIT_MEMO.release_idle() >= 2
        assert len(FIT_MEMO) == 0 and FIT_MEMO.nbytes == 0
    finally:
        set_fit_memo_limit(*previous)


def test_fit_memo_under_a_small_bound_still_gives_the_same_model(image_paths):
    paths, y = image_paths
    FIT_MEMO.clear()
    previous = set_fit_memo_limit(4096)
    try:
        small = make_clf(None, model="tiny_convnet", unfreeze=1, max_epochs=1).fit(paths, y)
        assert FIT_MEMO.nbytes <= 4096
    finally:
        set_fit_memo_limit(*previous)
    FIT_MEMO.clear()
    full = make_clf(None, model="tiny_convnet", unfreeze=1, max_epochs=1).fit(paths, y)
    np.testing.assert_allclose(small.predict_proba(paths), full.predict_proba(paths), atol=1e-6)
    FIT_MEMO.clear()


# ------------------------------------------------------------ device "auto"


def test_concurrent_predict_proba_with_auto_device(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, device="auto", max_epochs=1).fit(X, y)
    assert clf.get_params()["device"] == "auto" and isinstance(clf.device_, torch.device)
    expected = clf.predict_proba(X[:4])
    failures, outputs, seen_devices = [], [], set()
    stop = threading.Event()

    def predict():
        for _ in range(50):
            try:
                outputs.append(clf.predict_proba(X[:4]))
            except Exception as exc:  # noqa: BLE001 -- counted, not hidden
                failures.append(repr(exc))

    def watch():
        while not stop.is_set():
            seen_devices.add(clf.get_params()["device"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=predict) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert failures == []
    assert len(outputs) == 200
    for out in outputs:
        np.testing.assert_array_equal(out, expected)
    assert seen_devices == {"auto"}
    assert clf.get_params()["device"] == "auto"


class _RecordDevice(Callback):
    """What skorch's callbacks see as net.device during training."""

    def __init__(self, seen=None):
        # A parameter: skorch clones callbacks, the record must survive it.
        self.seen = set() if seen is None else seen

    def on_epoch_end(self, net, **kwargs):
        self.seen.add(net.device)


def test_device_auto_resolved_into_device_(tiny_backbone, data):
    X, y = data
    rec = _RecordDevice()
    # A validated run with a refit: skorch's scoring callbacks move cached
    # predictions to net.device.
    clf = make_clf(
        tiny_backbone, device="auto", max_epochs=2, train_split=ValidSplit(4, stratified=True), callbacks=[("rec", rec)]
    )
    assert not hasattr(clf, "device_")
    clf.fit(X, y)
    assert clf.best_epoch_ is not None and "valid_acc" in clf.validation_history_[-1]
    assert rec.seen == {str(clf.device_)}
    # The parameter stays "auto"; skorch moves tensors to the resolved device.
    assert clf.device_ == torch.device("cpu") and clf.get_params()["device"] == "auto" and clf.device == "cpu"
    assert clone(clf).device == "auto"


# ----------------------------------------------------- parameters validated


def test_set_params_on_a_fitted_net_is_validated_before_use(fitted):
    before = [g["lr"] for g in fitted.optimizer_.param_groups]
    with pytest.raises(InvalidParameterError, match="lr_decay"):
        fitted.set_params(lr_decay=2.0)
    assert fitted.lr_decay == 0.3
    assert [g["lr"] for g in fitted.optimizer_.param_groups] == before


# ------------------------------------------------ validation split


@pytest.mark.parametrize("per_class", [1, 2, 5])
def test_the_defaults_train_on_every_image(tiny_backbone, per_class):
    # Nothing is held out by default, however few the images: no validation
    # warning, no early stopping, no refit, every image in every epoch.
    # (The internal check's folds are not a validation split: with the
    # check, the final fit, when it fine-tunes, is this same fit; see
    # test_finetune_check.py.)
    X, y = make_data(per_class=per_class)
    clf = FineTuneClassifier(
        model=tiny_backbone,
        weights=None,
        max_epochs=2,
        num_workers=0,
        device="cpu",
        verbose=0,
        random_state=0,
        check_folds=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
    assert clf.validating_ is False and clf.best_epoch_ is None and clf.validation_history_ is None
    assert len(clf.history) == 2 and "valid_loss" not in clf.history[-1]
    assert [sum(b["train_batch_size"] for b in clf.history[epoch, "batches"]) for epoch in (0, 1)] == [len(X)] * 2
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[clf.predict_proba(X).argmax(1)])


def test_a_validation_split_is_opt_in(tiny_backbone):
    X, y = make_data(per_class=5)
    clf = make_clf(tiny_backbone, train_split=ValidSplit(5, stratified=True), max_epochs=2, head_epochs=0)
    clf.fit(X, y)
    assert clf.validating_ is True and "valid_loss" in clf.validation_history_[-1]
    assert clf.best_epoch_ == int(np.argmin(clf.validation_history_[:, "valid_loss"])) + 1


def test_a_chosen_split_is_not_replaced(tiny_backbone):
    X, y = make_data(per_class=3)
    clf = make_clf(tiny_backbone, train_split=ValidSplit(5, stratified=True))
    with pytest.raises(ValueError, match="n_splits=5 cannot be greater"):
        clf.fit(X, y)


# ----------------------------------------------------------- interruption


class _InterruptRun(Callback):
    """Raise KeyboardInterrupt at the end of epoch ``epoch`` of training run ``run`` (0: first)."""

    def __init__(self, run, epoch=1):
        self.run, self.epoch = run, epoch
        self.runs = -1

    def on_train_begin(self, net, **kwargs):
        self.runs += 1

    def on_epoch_end(self, net, **kwargs):
        if self.runs == self.run and len(net.history) == self.epoch:
            raise KeyboardInterrupt


def _validated_params():
    return {"max_epochs": 3, "train_split": ValidSplit(4, stratified=True), "patience": None}


def test_interrupted_refit_keeps_the_validated_model(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, callbacks=[("stop", _InterruptRun(run=1))], **_validated_params())
    with pytest.warns(UserWarning, match="the refit was interrupted after 1 epoch"):
        clf.fit(X, y)
    assert clf.interrupted_ is True and clf.best_epoch_ is None and clf.validation_history_ is None
    # The model is the validated run's, as with refit=False.
    kept = make_clf(tiny_backbone, refit=False, **_validated_params()).fit(X, y)
    assert len(clf.history) == 3 and "valid_loss" in clf.history[-1]
    np.testing.assert_allclose(clf.history[:, "valid_loss"], kept.history[:, "valid_loss"], rtol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(X), kept.predict_proba(X), atol=1e-5)
    # A resumed (warm-started) fit continues from there and is complete.
    clf.set_params(warm_start=True, callbacks=None)
    clf.fit(X, y)
    assert clf.interrupted_ is False and len(clf.history) == 6
    assert clf.module_.input_start is None


def test_interrupted_validated_run_skips_the_refit(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, callbacks=[("stop", _InterruptRun(run=0, epoch=2))], **_validated_params())
    with pytest.warns(UserWarning, match="the training run was interrupted after 2 epoch"):
        clf.fit(X, y)
    assert clf.interrupted_ is True and clf.best_epoch_ is None
    assert len(clf.history) == 2 and "valid_loss" in clf.history[-1]


class _Crash(Callback):
    def on_epoch_end(self, net, **kwargs):
        raise RuntimeError("boom")


def test_an_error_during_training_leaves_the_network_on_image_input(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, callbacks=[("crash", _Crash())], head_epochs=1)
    with pytest.raises(RuntimeError, match="boom"):
        clf.fit(X, y)
    assert clf.module_.input_start is None
    assert clf.predict_proba(X[:2]).shape == (2, 2)


# ------------------------------------------------------------ not fitted


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_calls_before_fit_raise_not_fitted(tiny_backbone, data, method):
    X, y = data
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(make_clf(tiny_backbone), method)(*args)


# ------------------------------------------------ skorch's private members


def test_only_public_skorch_hooks_are_used():
    """No skorch-private member (``_name`` of NeuralNet) is referenced in the fine-tuner's code."""
    from skorch import NeuralNetClassifier

    private = {name for name in dir(NeuralNetClassifier) if name.startswith("_") and not name.startswith("__")}
    package = pathlib.Path(finetune_pkg.__file__).parent
    used = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Attribute, ast.FunctionDef)):
                name = node.attr if isinstance(node, ast.Attribute) else node.name
                if name in private:
                    used.add((path.name, name))
    assert used == set()

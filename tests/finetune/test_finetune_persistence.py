"""FineTuneClassifier saved as plain data and tensors: pickle, joblib, skops, a fresh process."""

import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from skorch import NeuralNetClassifier
from tiny_finetune import make_clf

from sktransfer import FineTuneClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _params(net):
    # skorch's get_params also lists private attributes and, deep, the callbacks' objects.
    return {k: v for k, v in net.get_params(deep=False).items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def named(data):
    # A named architecture: nothing but the classifier's own type in the saved state.
    X, y = data
    return make_clf(None, model="tiny_convnet", unfreeze=2, max_epochs=2).fit(X, y)


_LOAD = """
import sys, joblib, numpy as np
clf = joblib.load(sys.argv[1])
np.save(sys.argv[2], clf.predict_proba(np.load(sys.argv[3])))
"""


def test_joblib_round_trip_in_a_fresh_process_predicts_the_same(named, data, tmp_path):
    X, _ = data
    joblib.dump(named, tmp_path / "clf.joblib")
    np.save(tmp_path / "X.npy", X)
    env = {**os.environ, "PYTHONPATH": REPO}
    args = [str(tmp_path / n) for n in ("clf.joblib", "proba.npy", "X.npy")]
    done = subprocess.run([sys.executable, "-c", _LOAD, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), named.predict_proba(X))


def test_the_saved_state_is_plain_data_and_tensor_bytes(named):
    state = named.__getstate__()
    assert set(state) == {"format", "params", "fitted"}
    # Defaults are not saved: __init__ gives them back.
    assert "module" not in state["params"] and "optimizer" not in state["params"]
    assert isinstance(state["fitted"]["network"], bytes) and state["fitted"]["optimizer"] is None
    assert isinstance(state["fitted"]["history"], str)


def test_restored_keeps_history_classes_and_parameters(named, data):
    X, y = data
    restored = pickle.loads(pickle.dumps(named))
    assert restored.history[-1]["train_loss"] == named.history[-1]["train_loss"]
    assert len(restored.history) == len(named.history)
    assert restored.classes_.tolist() == named.classes_.tolist()
    assert _params(restored) == _params(named)
    assert restored.n_unfrozen_groups_ == named.n_unfrozen_groups_ and restored.engine_ == named.engine_
    assert restored.score(X, y) == named.score(X, y)


def test_clone_and_set_params_after_loading(named, data):
    X, y = data
    restored = pickle.loads(pickle.dumps(named))
    assert _params(clone(restored)) == _params(clone(named))
    restored.set_params(lr=1e-3)
    assert {g["lr"] for g in restored.optimizer_.param_groups} == {
        g["lr"] for g in clone(named).set_params(lr=1e-3).fit(X, y).optimizer_.param_groups
    }
    with pytest.raises(ValueError, match="discard the fitted one"):
        restored.set_params(module__dropout=0.3)


def test_warm_start_keeps_the_optimizer_state(data):
    X, y = data
    clf = make_clf(None, model="tiny_convnet", unfreeze=1, max_epochs=2, warm_start=True).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    saved, loaded = clf.optimizer_.state_dict()["state"], restored.optimizer_.state_dict()["state"]
    assert saved.keys() == loaded.keys() and saved
    for key in saved:
        torch.testing.assert_close(loaded[key]["exp_avg"], saved[key]["exp_avg"])
    restored.fit(X, y)  # continues from the saved moments
    assert len(restored.history) == len(clf.history) + 2


def test_an_unfitted_classifier_round_trips_its_parameters():
    clf = FineTuneClassifier(model="tiny_convnet", weights=None, lr=1e-3, optimizer__weight_decay=0.1)
    restored = pickle.loads(pickle.dumps(clf))
    assert _params(restored) == _params(clf) and not restored.initialized_


def test_a_pickle_in_skorch_format_still_loads(named, data):
    # What an earlier sktransfer saved: skorch's own state (the network pickled as an object).
    X, _ = data
    state = NeuralNetClassifier.__getstate__(named)
    restored = FineTuneClassifier.__new__(FineTuneClassifier)
    restored.__setstate__(state)
    np.testing.assert_array_equal(restored.predict_proba(X), named.predict_proba(X))


def test_a_state_of_the_first_format_restores_the_defaults_of_its_time():
    # Format 1 saved only the parameters that differed from the defaults of
    # then: those defaults come back, not today's.
    state = {"format": "sktransfer.FineTuneClassifier/1", "params": {"lr": 1e-3}, "fitted": None}
    restored = FineTuneClassifier.__new__(FineTuneClassifier)
    restored.__setstate__(state)
    assert restored.model == "efficientnet_lite0" and restored.unfreeze == 3 and restored.check_folds is None
    assert restored.lr == 1e-3
    assert restored.__getstate__()["format"] == "sktransfer.FineTuneClassifier/2"


def test_a_kept_frozen_recipe_travels_with_the_classifier_through_skops(data, tmp_path, monkeypatch):
    sio = pytest.importorskip("skops.io")
    from tiny_finetune import tiny_recipe

    from sktransfer.cli._model_file import TRUSTED_TYPES
    from sktransfer.finetune import _check

    def recipe_wins(*args, **kwargs):
        result = check(*args, **kwargs)
        result.kept = "frozen"
        return result

    check = _check.check_fine_tuning
    monkeypatch.setattr(_check, "check_fine_tuning", recipe_wins)
    X, y = data
    clf = make_clf(None, model="tiny_convnet", check_folds=2, frozen=tiny_recipe()).fit(X, y)
    assert clf.frozen_ is not None and clf.__getstate__()["fitted"]["frozen"] is clf.frozen_
    sio.dump(clf, tmp_path / "clf.skops")
    # The recipe's types are sktransfer's (and scikit-learn's, which skops trusts): what the CLI trusts.
    assert set(sio.get_untrusted_types(file=tmp_path / "clf.skops")) <= set(TRUSTED_TYPES)
    loaded = sio.load(tmp_path / "clf.skops", trusted=list(TRUSTED_TYPES))
    assert not loaded.fine_tuned_ and loaded.frozen_ is not None
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), clf.frozen_.predict(X))

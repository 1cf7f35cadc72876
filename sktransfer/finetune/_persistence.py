"""How a FineTuneClassifier travels: its settings as data, its trained network as tensors.

skorch pickles a net's network, criterion and optimizer as objects, and
every setting as it is (the ``module``, ``optimizer`` and iterator classes,
the callbacks, the history), so ``skops.io`` lists twenty-odd types to trust
(``builtins.print``, ``functools.partial``, ``torch.optim.adamw.AdamW``...)
and the pickle carries the optimizer's moments, twice the network's size.
Here, as for the feature extractor (:mod:`sktransfer.backbones._persist`),
the state is plain data:

* the parameters that differ from their defaults (a default is rebuilt by
  ``__init__``, never saved: the classes it names need no trust);
* the fitted attributes that are data (classes, class weights, the history
  as JSON, the fast-prefix engine's record);
* the trained network's tensors, and the optimizer's only with
  ``warm_start=True`` (the one case where a later ``fit`` continues from
  them), both written by ``torch.save`` and read back with
  ``torch.load(weights_only=True)``, which refuses anything but tensors;
* the frozen recipe the internal check kept (``frozen_``), when it did,
  as the estimator itself: a fitted ``FrozenFeatureClassifier`` pickles its
  networks by name (kilobytes), and skops lists its types.

Loading builds the network again through skorch's own ``initialize`` (a
named architecture without reading or downloading its pretrained weights)
and loads the tensors into it, strictly. A parameter that is not plain data
(a module passed as ``model``, a ``train_split``, callbacks, an ``augment``
function, another optimizer class) travels as itself: skops lists its type,
as it would for any estimator holding user code.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.history import History

from ..backbones._registry import build_named_backbone
from ..utils import resolve_device
from ._activation_cache import leave
from ._fast_prefix import FastPrefix

if TYPE_CHECKING:
    from ._classifier import FineTuneClassifier

__all__ = ["is_saved_state", "restore_state", "saved_state"]

FORMAT = "sktransfer.FineTuneClassifier/2"
# What the defaults were when an earlier format was written: its saved
# parameters omit them, so they are put back, not today's defaults.
_EARLIER_DEFAULTS = {
    "sktransfer.FineTuneClassifier/1": {"model": "efficientnet_lite0", "unfreeze": 3, "check_folds": None},
}
_KEYS = {"format", "params", "fitted"}
# Fitted attributes that are plain data (numbers, strings, arrays), saved as they are.
_PLAIN_FITTED = (
    "classes_inferred_",
    "class_weight_",
    "validating_",
    "interrupted_",
    "best_epoch_",
    "engine_",
    "fine_tuned_",
    "check_scores_",
    "probe_C_",
)


def _is_default(value, default):
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # noqa: BLE001 -- e.g. arrays, whose == is elementwise: not a default
        return False


def _tensors_bytes(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def _tensors(data, what, device):
    try:
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises UnpicklingError, RuntimeError...
        raise ValueError(f"the saved {what} of this FineTuneClassifier cannot be read as tensors: {exc}") from exc


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a history entry of type {type(value).__name__} is not plain data")


def _history_json(history):
    return None if history is None else json.dumps(list(history), default=_json_value)


def saved_state(net: FineTuneClassifier) -> dict[str, Any]:
    """What ``net.__getstate__`` returns: plain data, and tensors as ``torch.save`` bytes."""
    defaults = type(net)().get_params(deep=False)
    params = {
        name: value
        for name, value in net.get_params(deep=False).items()
        # skorch's get_params also lists private attributes (the fit's engine record): state, not parameters.
        if not name.startswith("_") and (name not in defaults or not _is_default(value, defaults[name]))
    }
    if not net.initialized_:
        return {"format": FORMAT, "params": params, "fitted": None}
    state = vars(net)
    fitted = {name: state[name] for name in _PLAIN_FITTED if name in state}
    fast = state.get("_fast_prefix")
    fitted.update(
        history=_history_json(net.history_),
        validation_history=_history_json(state.get("validation_history_")),
        fast_prefix=None if fast is None else fast.__getstate__(),
        # The frozen recipe the internal check kept: an estimator, travelling as itself.
        frozen=state.get("frozen_"),
        network=_tensors_bytes({k: v.detach().cpu() for k, v in net.module_.state_dict().items()}),
        # Only a warm start continues from the optimizer's moments.
        optimizer=_tensors_bytes(net.optimizer_.state_dict()) if net.warm_start else None,
    )
    return {"format": FORMAT, "params": params, "fitted": fitted}


def is_saved_state(state: dict[str, Any]) -> bool:
    """Whether ``state`` was written by :func:`saved_state` (not by skorch's own pickling)."""
    return state.get("format") == FORMAT or state.get("format") in _EARLIER_DEFAULTS


def restore_state(net: FineTuneClassifier, state: dict[str, Any]) -> None:
    """``net.__setstate__``: rebuild ``net`` from :func:`saved_state`'s dict."""
    if set(state) != _KEYS or not isinstance(state["params"], dict):
        raise ValueError(f"not a saved FineTuneClassifier (expected a dict with the keys {sorted(_KEYS)})")
    type(net).__init__(net, **{**_EARLIER_DEFAULTS.get(state["format"], {}), **state["params"]})
    fitted = state["fitted"]
    if fitted is None:
        return
    for name in _PLAIN_FITTED:
        if name in fitted:
            setattr(net, name, fitted[name])
    # "auto" resolves again where the net is loaded: a GPU-trained net loads on a CPU-only machine.
    requested = net.device
    net.device_ = resolve_device(requested)
    net._device_param = requested
    net.device = str(net.device_) if requested == "auto" else requested
    # Absent from files written before the check kept a recipe.
    net.frozen_ = fitted.get("frozen")
    if fitted["fast_prefix"] is not None:
        fast = FastPrefix.__new__(FastPrefix)
        fast.__setstate__(fitted["fast_prefix"])
        net._fast_prefix = fast
    model = net.model
    if isinstance(model, str):
        # The architecture only: its pretrained weights are not read (nor
        # downloaded), the saved tensors replace them. Through vars():
        # skorch refuses to set a module attribute outside initialize.
        vars(net)["model"] = build_named_backbone(model, net.weights, load=False)
    try:
        NeuralNetClassifier.initialize(net)  # skorch's own: network, criterion, optimizer, callbacks
    finally:
        vars(net)["model"] = model
    net.module_.load_state_dict(_tensors(fitted["network"], "network", net.device_))
    leave(net.module_)  # trained: no longer the pretrained network (as after fit)
    if fitted["optimizer"] is not None:
        net.optimizer_.load_state_dict(_tensors(fitted["optimizer"], "optimizer state", net.device_))
    net.history_ = History(json.loads(fitted["history"]))
    if fitted["validation_history"] is not None:
        net.validation_history_ = History(json.loads(fitted["validation_history"]))

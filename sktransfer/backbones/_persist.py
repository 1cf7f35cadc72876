"""A named backbone as plain data: what to rebuild, and the tensors to put in it.

Unpickling a network object runs whatever its pickle says. A recipe holds
only builtins (names, numbers, bytes) plus a state dict read back with
``torch.load(..., weights_only=True)``, so loading one can do no more than
build one of the architectures this package knows and fill it with tensors.
It is also what lets ``skops.io`` load a fitted extractor while trusting a
single sktransfer type.
"""

from __future__ import annotations

import dataclasses
import io
import os

import torch

from ._base import Preprocessing
from ._registry import OFFLINE_BACKBONES, TINY_BACKBONE, build_named_backbone
from ._weights import (
    expand_weights_path,
    is_weights_path,
    load_state_dict_bytes,
    load_state_dict_checked,
    torchvision_weights_enum,
)

RECIPE_FORMAT = "sktransfer.backbone/1"
_RECIPE_KEYS = {"format", "model", "weights", "preprocessing", "state_dict"}


def _weights_token(model, weights):
    """What the architecture depends on in ``weights``, as a str or None."""
    if weights is None:
        return None
    if is_weights_path(weights):
        # Absolute, so that it still reads as a path wherever it is loaded;
        # only the architecture variant is taken from it, never the file.
        return os.path.abspath(expand_weights_path(weights))
    if model.lower() in (*OFFLINE_BACKBONES, TINY_BACKBONE):
        return str(weights)
    # The torchvision member's own name: "DEFAULT" may mean another member
    # in the torchvision release that loads it.
    return torchvision_weights_enum(model.lower(), weights).name


def backbone_recipe(backbone, model, weights):
    """A dict of builtins from which :func:`backbone_from_recipe` rebuilds ``backbone``.

    Parameters
    ----------
    backbone : Backbone
        The built network, on any device.
    model : str or object
        The architecture name it was built from; anything else (a module
        passed in) has no recipe.
    weights : str, path, weights enum or None
        The weights choice it was built with (it selects the architecture
        variant, e.g. GoogLeNet's input transform).

    Returns
    -------
    dict or None
        None when ``model`` is not a name.
    """
    if not isinstance(model, str):
        return None
    buffer = io.BytesIO()
    # CPU tensors: a network fitted on a GPU loads on a machine without one.
    torch.save({k: v.detach().cpu() for k, v in backbone.state_dict().items()}, buffer)
    return {
        "format": RECIPE_FORMAT,
        "model": model,
        "weights": _weights_token(model, weights),
        "preprocessing": dataclasses.asdict(backbone.preprocessing),
        "state_dict": buffer.getvalue(),
    }


def _preprocessing(fields):
    names = {f.name for f in dataclasses.fields(Preprocessing)}
    if not isinstance(fields, dict) or set(fields) != names:
        raise ValueError(f"the saved preprocessing must have the fields {sorted(names)}")
    pre = Preprocessing(
        resize_size=int(fields["resize_size"]),
        crop_size=int(fields["crop_size"]),
        interpolation=str(fields["interpolation"]),
        mean=tuple(float(v) for v in fields["mean"]),
        std=tuple(float(v) for v in fields["std"]),
    )
    if len(pre.mean) != 3 or len(pre.std) != 3:
        raise ValueError("the saved preprocessing must have 3 means and 3 standard deviations")
    return pre


def backbone_from_recipe(recipe):
    """Rebuild a backbone from :func:`backbone_recipe`'s dict.

    Nothing is downloaded or read from disk: the architecture is built with
    random parameters and the saved tensors are loaded into it, strictly.

    Raises
    ------
    ValueError
        When the recipe is malformed, names an unknown architecture, or its
        tensors do not fit it. Bytes that carry anything but tensors (a
        pickled payload) are refused by ``torch.load(weights_only=True)``.
    """
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT or set(recipe) != _RECIPE_KEYS:
        raise ValueError(
            f"not a saved sktransfer backbone (expected a dict with format {RECIPE_FORMAT!r} "
            f"and keys {sorted(_RECIPE_KEYS)})"
        )
    model, weights = recipe["model"], recipe["weights"]
    if not isinstance(model, str) or not (weights is None or isinstance(weights, str)):
        raise ValueError("a saved backbone names its model and weights with strings")
    backbone = build_named_backbone(model, weights, load=False)
    backbone.preprocessing = _preprocessing(recipe["preprocessing"])
    state = load_state_dict_bytes(recipe["state_dict"], source="the saved network")
    load_state_dict_checked(backbone, state, source="the saved network")
    return backbone.eval()

"""A named backbone as plain data: what to rebuild, and the tensors to put in it.

Unpickling a network object runs whatever its pickle says. A recipe holds
only builtins (names, numbers, bytes) plus, when the weights cannot be named,
a state dict read back with ``torch.load(..., weights_only=True)``, so loading
one can do no more than build one of the architectures this package knows
and fill it with tensors. It is also what lets ``skops.io`` load a fitted
extractor while trusting a single sktransfer type.

Weights that can be named (a packaged or torchvision download, a local file
known by the SHA-256 of its bytes) need not travel at all: the recipe then
holds their identity and the digest of the tensors, and rebuilding reloads
them from the name and checks both, so a pickle is a few kilobytes and a
weights file rewritten since fitting is an error, not other embeddings.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Any

import torch

from ._base import Backbone, Preprocessing
from ._registry import OFFLINE_BACKBONES, TINY_BACKBONE, build_named_backbone, list_backbones
from ._timm_names import is_timm_name, timm_source
from ._weights import (
    Weights,
    expand_weights_path,
    is_weights_path,
    load_state_dict_bytes,
    load_state_dict_checked,
    state_dict_digest,
    torchvision_weights_enum,
    weights_identity,
)

RECIPE_FORMAT = "sktransfer.backbone/2"
_RECIPE_KEYS = {"format", "model", "weights", "preprocessing", "state_dict", "identity", "digest"}


def _weights_token(model, weights):
    """What the architecture depends on in ``weights``, as a str or None."""
    if weights is None:
        return None
    if is_weights_path(weights):
        # Absolute, so that it still reads as a path wherever it is loaded;
        # only the architecture variant is taken from it, never the file.
        return os.path.abspath(expand_weights_path(weights))
    if is_timm_name(model) or model.lower() in (*OFFLINE_BACKBONES, TINY_BACKBONE):
        return str(weights)
    # The torchvision member's own name: "DEFAULT" may mean another member
    # in the torchvision release that loads it.
    return torchvision_weights_enum(model.lower(), weights).name


def backbone_recipe(backbone: Backbone, model: Any, weights: Weights, *, tensors: bool = True) -> dict[str, Any] | None:
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
    tensors : bool, default=True
        Whether the recipe carries the tensors. False (only for weights that
        :func:`weights_identity` can name, and a ``backbone`` holding exactly
        them) leaves them out: rebuilding reloads them by name.

    Returns
    -------
    dict or None
        None when ``model`` is not a name.
    """
    if not isinstance(model, str):
        return None
    identity = weights_identity(model, weights)
    if not tensors and identity is None:
        raise ValueError(
            f"the weights of {model!r} (weights={weights!r}) cannot be named, so a recipe must carry its tensors"
        )
    state_dict = None
    if tensors:
        buffer = io.BytesIO()
        # CPU tensors: a network fitted on a GPU loads on a machine without one.
        torch.save({k: v.detach().cpu() for k, v in backbone.state_dict().items()}, buffer)
        state_dict = buffer.getvalue()
    return {
        "format": RECIPE_FORMAT,
        "model": model,
        "weights": _weights_token(model, weights),
        "preprocessing": dataclasses.asdict(backbone.preprocessing),
        "state_dict": state_dict,
        "identity": identity,
        "digest": state_dict_digest(backbone),
    }


def _preprocessing(fields):
    names = {f.name for f in dataclasses.fields(Preprocessing)}
    # Recipes saved before crop modes existed have no crop_mode: "center".
    if not isinstance(fields, dict) or set(fields) not in (names, names - {"crop_mode"}):
        raise ValueError(f"the saved preprocessing must have the fields {sorted(names)}")
    pre = Preprocessing(
        resize_size=int(fields["resize_size"]),
        crop_size=int(fields["crop_size"]),
        interpolation=str(fields["interpolation"]),
        mean=tuple(float(v) for v in fields["mean"]),
        std=tuple(float(v) for v in fields["std"]),
        crop_mode=str(fields.get("crop_mode", "center")),
    )
    if len(pre.mean) != 3 or len(pre.std) != 3:
        raise ValueError("the saved preprocessing must have 3 means and 3 standard deviations")
    return pre


def check_recipe(recipe: Any) -> dict[str, Any]:
    """Check a recipe's structure without building anything; return it.

    Raises
    ------
    ValueError
        When ``recipe`` is not a saved backbone, names an unknown
        architecture, or leaves out tensors it cannot reload by name.
    """
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT or set(recipe) != _RECIPE_KEYS:
        raise ValueError(
            f"not a saved sktransfer backbone (expected a dict with format {RECIPE_FORMAT!r} "
            f"and keys {sorted(_RECIPE_KEYS)})"
        )
    model, weights = recipe["model"], recipe["weights"]
    if not isinstance(model, str) or not (weights is None or isinstance(weights, str)):
        raise ValueError("a saved backbone names its model and weights with strings")
    name = model.lower()
    if is_timm_name(model):
        timm_source(model)  # raises for an unknown name or an uncached, undownloadable hf-hub: config
    elif name not in (*OFFLINE_BACKBONES, TINY_BACKBONE) and name not in list_backbones():
        build_named_backbone(model, weights, load=False)  # raises, naming similar models
    if not all(v is None or isinstance(v, str) for v in (recipe["identity"], recipe["digest"])):
        raise ValueError("a saved backbone names its weights identity and digest with strings")
    if recipe["state_dict"] is None and (recipe["identity"] is None or recipe["digest"] is None):
        raise ValueError("a saved backbone without tensors must name its weights identity and digest")
    _preprocessing(recipe["preprocessing"])
    return recipe


def recipe_has_tensors(recipe: dict[str, Any]) -> bool:
    """Whether a checked recipe carries its tensors (rather than naming its weights)."""
    return recipe["state_dict"] is not None


def backbone_from_recipe(recipe: dict[str, Any]) -> Backbone:
    """Rebuild a backbone from :func:`backbone_recipe`'s dict.

    A recipe with tensors is built with random parameters and the saved
    tensors are loaded into it, strictly: nothing is downloaded or read from
    disk. A recipe without them reloads the weights it names (the packaged
    file, the torch hub cache, the local file), after checking that the name
    still means the same bytes, and checks the rebuilt tensors' digest.

    Raises
    ------
    ValueError
        When the recipe is malformed, names an unknown architecture, its
        tensors do not fit it, or the weights it names changed since it was
        saved. Bytes that carry anything but tensors (a pickled payload) are
        refused by ``torch.load(weights_only=True)``.
    FileNotFoundError
        When it names a local weights file that no longer exists.
    """
    check_recipe(recipe)
    model, weights = recipe["model"], recipe["weights"]
    if recipe_has_tensors(recipe):
        backbone = build_named_backbone(model, weights, load=False)
        state = load_state_dict_bytes(recipe["state_dict"], source="the saved network")
        load_state_dict_checked(backbone, state, source="the saved network")
    else:
        check_same_weights(recipe)
        backbone = build_named_backbone(model, weights, load=True)
    backbone.preprocessing = _preprocessing(recipe["preprocessing"])
    digest = recipe["digest"]
    if digest is not None and state_dict_digest(backbone) != digest:
        raise ValueError(
            f"the rebuilt {model} network (weights={weights!r}) does not hold the tensors it was saved "
            "with: its weights changed since, or the fitted network was modified before saving. Fit again."
        )
    return backbone.eval()


def check_same_weights(recipe: dict[str, Any]) -> None:
    """Refuse to rebuild from weights whose identity changed since saving."""
    model, weights, saved = recipe["model"], recipe["weights"], recipe["identity"]
    if weights is not None and is_weights_path(weights) and not os.path.isfile(weights):
        raise FileNotFoundError(
            f"weights file not found: {weights!r}. This {model} network was saved by name, not with "
            "its tensors, and needs that file (with the same content) wherever it is loaded"
        )
    current = weights_identity(model, weights)
    if current != saved:
        raise ValueError(
            f"the weights {weights!r} of this saved {model} network are not the ones it was fitted "
            f"with: they were {saved!r} and are now {current!r} (a weights file rewritten or a package "
            "upgraded since). Restore those weights or fit again."
        )

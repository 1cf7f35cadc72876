"""Layer groups of a timm model, from its own stages.

The groups follow the points timm itself names: the modules of
``feature_info`` (a ResNet's ``layer1..4``, a ConvNeXt's ``stages.0..3``)
and, for Vision Transformers, the blocks (in four consecutive groups, as
``group_matcher`` counts them block by block). Running the groups in order
computes ``model.forward_features``; the embedding is
``model.forward_head(features, pre_logits=True)``, run by the model's own
method, so whatever pooling the model has (class token, average, attention
pool, ``fc_norm``) is the default embedding.

The group modules share the model's submodules and parameters, so the
backbone's state dict names every tensor once per place it is used, and
moving or loading the backbone moves or loads the model. The two groups
that must call the model's own methods (a ViT's patch and position
embedding, the head) hold the model as a plain attribute, not a submodule:
its tensors are registered by the submodules and parameters they name.

Other timm architectures are one group, ``"features"``
(``forward_features``), plus the head.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import BackboneSpec

#: Vision Transformer blocks are cut into this many groups.
VIT_GROUPS = 4


class TimmCall(nn.Module):
    """Run ``method`` of a timm model, registering the submodules and parameters it uses.

    Parameters
    ----------
    net : nn.Module
        The timm model (kept as a plain attribute: not in this module's state dict).
    method : str
        ``"vit_embed"`` (patch, position embedding and pre-norm of a ViT),
        ``"forward_features"`` or ``"forward_head"`` (with ``pre_logits=True``).
    members : list of str
        Attribute names of ``net`` (submodules, parameters or buffers) this call uses.
    """

    def __init__(self, net: nn.Module, method: str, members: list[str]) -> None:
        super().__init__()
        object.__setattr__(self, "net", net)
        self.method = method
        for name in members:
            value = getattr(net, name, None)
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            elif name in net._buffers and value is not None:
                self.register_buffer(name, value, persistent=name not in net._non_persistent_buffers_set)
            elif isinstance(value, nn.Module):
                self.add_module(name, value)

    def _apply(self, fn, recurse=True):
        # Moving or casting replaces buffers (parameters are changed in
        # place): hand the model the new ones it reads.
        super()._apply(fn, recurse)
        for name, buffer in self._buffers.items():
            self.net._buffers[name] = buffer
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if self.method == "forward_head":
            return net.forward_head(x, pre_logits=True)
        if self.method == "forward_features":
            return net.forward_features(x)
        patch = net.patch_embed
        if getattr(patch, "strict_img_size", False) and patch.img_size is not None:
            if tuple(x.shape[-2:]) != tuple(patch.img_size):
                h, w = patch.img_size
                raise ValueError(
                    f"this timm model takes {h}x{w} inputs (a fixed input size), got {x.shape[-2]}x{x.shape[-1]}: "
                    "build it for another size with get_backbone(model, input_size=...) instead of changing "
                    "its preprocessing"
                )
        x = net._pos_embed(patch(x))
        return net.norm_pre(net.patch_drop(x))

    def extra_repr(self) -> str:
        return self.method


def _class_name(net):
    return type(net).__name__


def _head_members(net, trunk):
    """Top-level children and parameters of ``net`` outside the trunk, less the classifier."""
    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    members = []
    for name, child in net.named_children():
        if name in trunk or child is classifier:
            continue
        members.append(name)
    return members, classifier


def _head(net, trunk):
    members, classifier = _head_members(net, trunk)
    head = TimmCall(net, "forward_head", members)
    # A classifier inside a head module (ConvNeXt's head.fc) is not registered
    # twice: the head module's other children are, one level down.
    for name in list(head._modules):
        module = head._modules[name]
        if classifier is not None and any(m is classifier for m in module.modules()) and module is not classifier:
            del head._modules[name]
            for child_name, child in module.named_children():
                if child is not classifier:
                    head.add_module(f"{name}_{child_name}", child)
    is_linear = isinstance(classifier, nn.Linear)
    return head, (classifier if is_linear else None)


def _split_vit(net):
    blocks = list(net.blocks)
    size = max(1, len(blocks) // VIT_GROUPS)
    embed_members = ["patch_embed", "pos_drop", "patch_drop", "norm_pre", "cls_token", "reg_token", "pos_embed"]
    groups = [("embed", TimmCall(net, "vit_embed", embed_members))]
    n = min(VIT_GROUPS, len(blocks))
    for i in range(n):
        chunk = blocks[i * size : (i + 1) * size if i < n - 1 else len(blocks)]
        if i == n - 1:
            chunk = chunk + [net.norm]
        groups.append((f"blocks{i + 1}", nn.Sequential(*chunk)))
    trunk = {"patch_embed", "pos_drop", "patch_drop", "norm_pre", "blocks", "norm"}
    registers = int(getattr(net, "num_reg_tokens", 0) or 0)
    fmt = ("nlc" if getattr(net, "cls_token", None) is not None else "nl") + (f"+{registers}" if registers else "")
    return groups, trunk, fmt


def _split_resnet(net):
    groups = [("stem", nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool))]
    groups += [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]
    trunk = {"conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"}
    return groups, trunk, "nchw"


def _split_convnext(net):
    stages = list(net.stages)
    groups = [("stem", net.stem)] + [(f"stage{i + 1}", s) for i, s in enumerate(stages[:-1])]
    groups.append((f"stage{len(stages)}", nn.Sequential(stages[-1], net.norm_pre)))
    return groups, {"stem", "stages", "norm_pre"}, "nchw"


#: timm model classes whose ``forward_features`` the splitters reproduce group by group.
_SPLITTERS = {
    "VisionTransformer": _split_vit,
    "ResNet": _split_resnet,
    "ConvNeXt": _split_convnext,
}


def split_timm(net: nn.Module) -> BackboneSpec:
    """A :class:`BackboneSpec` of a timm model: its stages as groups, its ``forward_head`` as pre-logits."""
    splitter = _SPLITTERS.get(_class_name(net))
    if splitter is None or getattr(net, "grad_checkpointing", False):
        # One group: every submodule and parameter but the classifier (the
        # head's own layers, e.g. a norm, are in it too: the trunk and head
        # of an unknown architecture cannot be told apart).
        classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
        members = [name for name, child in net.named_children() if child is not classifier]
        tensors = list(net._parameters) + list(net._buffers)
        groups = [("features", TimmCall(net, "forward_features", members + tensors))]
        head = TimmCall(net, "forward_head", [])
        top_level = any(child is classifier for child in net.children())
        classifier = classifier if top_level and isinstance(classifier, nn.Linear) else None
        fmt = "nchw"
    else:
        groups, trunk, fmt = splitter(net)
        head, classifier = _head(net, trunk)
    return BackboneSpec(
        groups=groups,
        pool=nn.Identity(),
        pre_logits=head,
        head=classifier,
        num_features=int(getattr(net, "head_hidden_size", None) or net.num_features),
        group_formats=fmt,
    )

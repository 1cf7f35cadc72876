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

Other timm architectures are cut at their ``feature_info`` modules
(EfficientNet's and MobileNet's ``blocks.N``, RegNet's ``s1..s4``) when
their top-level children, run in order, are their ``forward_features``:
that is checked on a probe batch when the model is split, as is the
channels-first layout of every cut. Where it does not hold (a ViT-like
model with position embeddings, an architecture with a branching trunk), the
model is one group, ``"features"`` (``forward_features``), plus the head.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import BackboneSpec

#: Vision Transformer blocks are cut into this many groups.
VIT_GROUPS = 4

#: Side of the probe image that checks a split from ``feature_info`` (models without a fixed input size).
PROBE_SIDE = 64


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


def _children_in_order(net, cuts):
    """(qualified name, module) of ``net``'s children, a Sequential opened where a cut lies inside it."""
    inside = {cut.split(".")[0] for cut in cuts if "." in cut}
    out = []
    for name, child in net.named_children():
        if name in inside and isinstance(child, nn.Sequential):
            out += [(f"{name}.{sub}", module) for sub, module in child.named_children()]
        else:
            out.append((name, child))
    return out


def _probe(net):
    """A small fixed input batch (its own generator: the global one is untouched)."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    side = int(cfg.get("input_size", (3, 224, 224))[-1]) if cfg.get("fixed_input_size") else PROBE_SIDE
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))


def _split_feature_info(net):
    """Groups cut at ``feature_info``'s modules, if the children in order compute ``forward_features``; else None."""
    if any(p is not None for p in net._parameters.values()):
        return None  # a parameter of the model itself (a position embedding): not a chain of its children
    try:
        cuts = [str(entry["module"]) for entry in net.feature_info]
        channels = [int(entry["num_chs"]) for entry in net.feature_info]
    except (AttributeError, TypeError, KeyError, ValueError):
        return None
    sequence = _children_in_order(net, cuts)
    names = [name for name, _ in sequence]
    if not cuts or len(set(cuts)) != len(cuts) or not set(cuts) <= set(names):
        return None
    ends = [names.index(cut) for cut in cuts]
    if ends != sorted(ends):
        return None
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            split = _cut_and_check(net, sequence, ends, channels, _probe(net))
    except Exception:  # a trunk its children do not compute on their own: one group
        split = None
    finally:
        net.train(was_training)
    if split is not None:
        groups, used, _ = split
        # Every parameter of the trunk's children is in a group (none left out of both trunk and head).
        in_groups = {id(p) for _, group in groups for p in group.parameters()}
        if any(id(p) not in in_groups for name in used for p in getattr(net, name).parameters()):
            return None
    return split


def _cut_and_check(net, sequence, ends, channels, x):
    groups, start = [], 0
    for end, width in zip(ends, channels):
        modules = [module for _, module in sequence[start : end + 1]]
        x = nn.Sequential(*modules)(x)
        if x.ndim != 4 or x.shape[1] != width:  # not a channels-first feature map
            return None
        groups.append((sequence[end][0].replace(".", ""), modules))
        start = end + 1
    expected = net.forward_features(_probe(net))
    # forward_features may run more of the children after the last cut (EfficientNet's conv_head, bn2).
    for extra in range(len(sequence) - start + 1):
        if x.shape == expected.shape and torch.allclose(x, expected, rtol=1e-4, atol=1e-5):
            groups[-1][1].extend(module for _, module in sequence[start : start + extra])
            used = {name.split(".")[0] for name, _ in sequence[: start + extra]}
            return [(name, nn.Sequential(*modules)) for name, modules in groups], used, "nchw"
        if start + extra < len(sequence):
            x = sequence[start + extra][1](x)
    return None


#: timm model classes whose ``forward_features`` the splitters reproduce group by group.
_SPLITTERS = {
    "VisionTransformer": _split_vit,
    "ResNet": _split_resnet,
    "ConvNeXt": _split_convnext,
}


def split_timm(net: nn.Module) -> BackboneSpec:
    """A :class:`BackboneSpec` of a timm model: its stages as groups, its ``forward_head`` as pre-logits."""
    splitter = _SPLITTERS.get(_class_name(net))
    split = None
    if not getattr(net, "grad_checkpointing", False):
        split = splitter(net) if splitter is not None else _split_feature_info(net)
    if split is None:
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
        groups, trunk, fmt = split
        head, classifier = _head(net, trunk)
    return BackboneSpec(
        groups=groups,
        pool=nn.Identity(),
        pre_logits=head,
        head=classifier,
        num_features=int(getattr(net, "head_hidden_size", None) or net.num_features),
        group_formats=fmt,
    )

"""Layer groups of every torchvision classification family.

Each splitter takes a built torchvision model and returns a ``BackboneSpec``
whose groups reuse the model's own submodules, in the order its ``forward``
calls them, so that ``trunk -> pool -> pre_logits -> head`` computes exactly
what the original network computes. Groups follow the network's stages (the
points where resolution drops), which is where fine-tuning recipes draw the
line between "generic" and "specific" features.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._base import BackboneSpec, Lambda, global_avg


def _seq(*modules):
    return nn.Sequential(*modules)


def _tf_transform_input(x):
    """GoogLeNet / Inception v3 ported weights expect inputs scaled to [-1, 1].

    The same re-normalisation torchvision applies when ``transform_input``
    is set: undo the ImageNet normalisation and apply (x - 0.5) / 0.5.
    """
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=x.dtype, device=x.device)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=x.dtype, device=x.device)
    return x * (std / 0.5).view(1, 3, 1, 1) + ((mean - 0.5) / 0.5).view(1, 3, 1, 1)


def _flatten_avg():
    return Lambda(global_avg, "global_avg")


def _split_at_maxpool(features):
    """Cut a plain conv ``features`` Sequential after each max-pool (VGG, AlexNet)."""
    blocks, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(_seq(*current))
            current = []
    if current:
        blocks.append(_seq(*current))
    return blocks


# --------------------------------------------------------------------------- CNNs


def split_resnet(m: nn.Module) -> BackboneSpec:
    groups = [("stem", _seq(m.conv1, m.bn1, m.relu, m.maxpool))]
    groups += [(f"layer{i}", getattr(m, f"layer{i}")) for i in range(1, 5)]
    return BackboneSpec(groups, _flatten_avg(), None, m.fc, m.fc.in_features)


def split_vgg_like(m: nn.Module) -> BackboneSpec:
    # AlexNet: 3 conv blocks; VGG: 5. The MLP "fc6/fc7" is the pre-logits.
    blocks = _split_at_maxpool(m.features)
    prefix = "conv" if len(blocks) == 3 else "block"
    groups = [(f"{prefix}{i + 1}", b) for i, b in enumerate(blocks)]
    pool = _seq(m.avgpool, nn.Flatten(1))
    pre_logits = _seq(*list(m.classifier)[:-1])
    head = m.classifier[-1]
    return BackboneSpec(groups, pool, pre_logits, head, head.in_features)


def split_squeezenet(m: nn.Module) -> BackboneSpec:
    layers = list(m.features)
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    cuts = [0] + [p + 1 for p in pools] + [len(layers)]
    groups = [
        (f"stage{i}" if i else "stem", _seq(*layers[a:b])) for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])) if b > a
    ]
    # The 1x1-conv classifier pools *after* its ReLU, so logits cannot be
    # computed from the pooled embedding: no head here (transfer replaces it).
    return BackboneSpec(groups, _flatten_avg(), None, None, m.classifier[1].in_channels)


def split_densenet(m: nn.Module) -> BackboneSpec:
    f = m.features
    groups = [("stem", _seq(f.conv0, f.norm0, f.relu0, f.pool0))]
    for i in range(1, 5):
        parts = [getattr(f, f"denseblock{i}")]
        parts += [getattr(f, f"transition{i}")] if i < 4 else [f.norm5, nn.ReLU()]
        groups.append((f"block{i}", _seq(*parts)))
    return BackboneSpec(groups, _flatten_avg(), None, m.classifier, m.classifier.in_features)


def _stage_indices_by_stride(features, probe_size=64):
    """Group consecutive ``features`` children by output resolution."""
    x = torch.zeros(1, 3, probe_size, probe_size)
    sizes = []
    with torch.no_grad():
        for layer in features:
            x = layer(x)
            sizes.append(x.shape[-1])
    stages, start = [], 0
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or sizes[i] != sizes[i - 1]:
            stages.append((start, i))
            start = i
    return stages


def _split_features_sequential(features, head, pre_logits=None):
    """Stem = first child, then one group per resolution (MobileNet, EfficientNet)."""
    children = list(features)
    was_training = features.training
    features.eval()
    stages = _stage_indices_by_stride(features)
    features.train(was_training)
    groups = [("stem", children[0])]
    # Every resolution stage, less the stem child that the first one starts with.
    stages_after_stem = [(max(a, 1), b) for a, b in stages if b > 1]
    for k, (a, b) in enumerate(stages_after_stem, start=1):
        groups.append((f"stage{k}", _seq(*children[a:b])))
    return BackboneSpec(groups, _flatten_avg(), pre_logits, head, head.in_features)


def split_mobilenet_v2(m: nn.Module) -> BackboneSpec:
    return _split_features_sequential(m.features, m.classifier[-1])


def split_mobilenet_v3(m: nn.Module) -> BackboneSpec:
    pre = _seq(*list(m.classifier)[:-1])
    return _split_features_sequential(m.features, m.classifier[-1], pre_logits=pre)


def split_efficientnet(m: nn.Module) -> BackboneSpec:
    # torchvision already groups EfficientNet blocks by stage: features[1:-1].
    children = list(m.features)
    groups = [("stem", children[0])]
    groups += [(f"stage{i}", c) for i, c in enumerate(children[1:-1], start=1)]
    groups.append(("head_conv", children[-1]))
    head = m.classifier[-1]
    return BackboneSpec(groups, _flatten_avg(), None, head, head.in_features)


def split_mnasnet(m: nn.Module) -> BackboneSpec:
    layers = list(m.layers)
    # 0-7: stem convs, 8-13: the six inverted-residual stacks, 14-16: 1x1 conv head.
    groups = [("stem", _seq(*layers[:8]))]
    groups += [(f"stack{i - 7}", layers[i]) for i in range(8, 14)]
    groups.append(("head_conv", _seq(*layers[14:])))
    head = m.classifier[-1]
    return BackboneSpec(groups, _flatten_avg(), None, head, head.in_features)


def split_shufflenet(m: nn.Module) -> BackboneSpec:
    groups = [("stem", _seq(m.conv1, m.maxpool))]
    groups += [(f"stage{i}", getattr(m, f"stage{i}")) for i in (2, 3, 4)]
    groups.append(("head_conv", m.conv5))
    return BackboneSpec(groups, _flatten_avg(), None, m.fc, m.fc.in_features)


def split_regnet(m: nn.Module) -> BackboneSpec:
    groups = [("stem", m.stem)]
    groups += [(name, block) for name, block in m.trunk_output.named_children()]
    return BackboneSpec(groups, _flatten_avg(), None, m.fc, m.fc.in_features)


def split_googlenet(m: nn.Module) -> BackboneSpec:
    groups = [
        ("stem", _seq(m.conv1, m.maxpool1, m.conv2, m.conv3, m.maxpool2)),
        ("inception3", _seq(m.inception3a, m.inception3b, m.maxpool3)),
        ("inception4", _seq(m.inception4a, m.inception4b, m.inception4c, m.inception4d, m.inception4e, m.maxpool4)),
        ("inception5", _seq(m.inception5a, m.inception5b)),
    ]
    transform = Lambda(_tf_transform_input, "tf_transform_input") if m.transform_input else None
    return BackboneSpec(groups, _flatten_avg(), None, m.fc, m.fc.in_features, input_transform=transform)


def split_inception_v3(m: nn.Module) -> BackboneSpec:
    groups = [
        (
            "stem",
            _seq(
                m.Conv2d_1a_3x3,
                m.Conv2d_2a_3x3,
                m.Conv2d_2b_3x3,
                m.maxpool1,
                m.Conv2d_3b_1x1,
                m.Conv2d_4a_3x3,
                m.maxpool2,
            ),
        ),
        ("mixed5", _seq(m.Mixed_5b, m.Mixed_5c, m.Mixed_5d)),
        ("mixed6", _seq(m.Mixed_6a, m.Mixed_6b, m.Mixed_6c, m.Mixed_6d, m.Mixed_6e)),
        ("mixed7", _seq(m.Mixed_7a, m.Mixed_7b, m.Mixed_7c)),
    ]
    transform = Lambda(_tf_transform_input, "tf_transform_input") if m.transform_input else None
    return BackboneSpec(groups, _flatten_avg(), None, m.fc, m.fc.in_features, input_transform=transform)


# --------------------------------------------------------------- modern families


class _ChannelLayerNorm(nn.Module):
    """Apply a ``LayerNorm2d`` to pooled (N, C) vectors, sharing its parameters."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm
        return nn.functional.layer_norm(x, n.normalized_shape, n.weight, n.bias, n.eps)


def split_convnext(m: nn.Module) -> BackboneSpec:
    f = list(m.features)
    # features: stem, stage, downsample, stage, downsample, stage, downsample, stage
    groups = [("stem", f[0]), ("stage1", f[1])]
    groups += [(f"stage{i}", _seq(f[2 * i - 2], f[2 * i - 1])) for i in (2, 3, 4)]
    head = m.classifier[-1]
    pre = _ChannelLayerNorm(m.classifier[0])
    return BackboneSpec(groups, _flatten_avg(), pre, head, head.in_features)


def split_swin(m: nn.Module) -> BackboneSpec:
    f = list(m.features)
    # Swin works channels-last inside; the last group returns NCHW like forward().
    groups = [("stem", f[0]), ("stage1", f[1])]
    groups += [(f"stage{i}", _seq(f[2 * i - 2], f[2 * i - 1])) for i in (2, 3)]
    groups.append(("stage4", _seq(f[6], f[7], m.norm, m.permute)))
    formats = {"stem": "nhwc", "stage1": "nhwc", "stage2": "nhwc", "stage3": "nhwc", "stage4": "nchw"}
    return BackboneSpec(groups, _flatten_avg(), None, m.head, m.head.in_features, group_formats=formats)


def split_maxvit(m: nn.Module) -> BackboneSpec:
    groups = [("stem", m.stem)] + [(f"stage{i + 1}", b) for i, b in enumerate(m.blocks)]
    c = list(m.classifier)  # pool, flatten, LayerNorm, Linear, Tanh, Linear
    return BackboneSpec(groups, _seq(c[0], c[1]), _seq(*c[2:5]), c[5], c[5].in_features)


class _ViTEmbedding(nn.Module):
    """Patchify, prepend the class token, add position embeddings."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout
        self.patch_size = vit.patch_size
        self.image_size = vit.image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"this ViT takes {self.image_size}x{self.image_size} inputs, got {h}x{w}")
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


def split_vit(m: nn.Module) -> BackboneSpec:
    layers = list(m.encoder.layers)
    n_groups = 4
    size = len(layers) // n_groups
    groups = [("embed", _ViTEmbedding(m))]
    for i in range(n_groups):
        chunk = layers[i * size : (i + 1) * size if i < n_groups - 1 else len(layers)]
        if i == n_groups - 1:
            chunk = chunk + [m.encoder.ln]
        groups.append((f"blocks{i + 1}", _seq(*chunk)))
    heads = list(m.heads)
    head = heads[-1]
    pre = _seq(*heads[:-1]) if len(heads) > 1 else None
    pool = Lambda(_class_token, "class_token")
    return BackboneSpec(groups, pool, pre, head, head.in_features, group_formats="nlc")


def _class_token(x):
    return x[:, 0]


#: Architecture-name prefix -> splitter (first match wins).
FAMILY_SPLITTERS = [
    ("resnet", split_resnet),
    ("resnext", split_resnet),
    ("wide_resnet", split_resnet),
    ("alexnet", split_vgg_like),
    ("vgg", split_vgg_like),
    ("squeezenet", split_squeezenet),
    ("densenet", split_densenet),
    ("mobilenet_v2", split_mobilenet_v2),
    ("mobilenet_v3", split_mobilenet_v3),
    ("efficientnet", split_efficientnet),
    ("mnasnet", split_mnasnet),
    ("shufflenet", split_shufflenet),
    ("regnet", split_regnet),
    ("googlenet", split_googlenet),
    ("inception", split_inception_v3),
    ("convnext", split_convnext),
    ("swin", split_swin),
    ("maxvit", split_maxvit),
    ("vit", split_vit),
]


def splitter_for(name: str) -> Callable[[nn.Module], BackboneSpec]:
    for prefix, fn in FAMILY_SPLITTERS:
        if name.startswith(prefix):
            return fn
    raise ValueError(f"no layer-group split is known for architecture {name!r}")

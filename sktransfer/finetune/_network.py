"""The fine-tuned network: a backbone, a new head, and which part of it trains.

* :class:`FineTuneNetwork`: a backbone plus a new linear head, which can run
  from any layer-group boundary (so cached activations can enter midway) and
  keeps frozen groups in eval mode.
* :func:`resolve_unfreeze` / :func:`set_trainable`: the last ``unfreeze``
  layer groups train, the rest is frozen through ``requires_grad``.
* :func:`suffix_start`: where the trainable part begins (where cached
  activations enter).
* :func:`param_groups`: one optimizer param group per layer group, with the
  head at ``lr`` and group k from the end at ``lr * lr_decay**k``. Every
  parameter is in the optimizer from the start; freezing only switches
  ``requires_grad`` (a parameter without gradient is skipped by the
  optimizer), so resuming never meets param groups added mid-training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import nn

from ..backbones import Backbone

HEAD = "head"
# ``forward``'s default entry: the network's ``input_start`` (None means images).
_INPUT_START = object()


class FineTuneNetwork(nn.Module):
    """A backbone with a new classification head, runnable from a group boundary.

    Parameters
    ----------
    backbone : Backbone
        The pretrained network cut into layer groups.
    n_classes : int
        Width of the new head.
    dropout : float, default=0.2
        Dropout before the head's linear layer.
    batchnorm : {"frozen", "train"}, default="frozen"
        ``"frozen"`` keeps frozen layer groups in eval mode during training
        (BatchNorm uses and keeps its running statistics; no drop-connect).

    Attributes
    ----------
    frozen_groups : list of str
        Layer groups currently frozen (all of them until a phase is set).
    input_start : str or None
        What ``forward`` receives: None for uint8 image batches, a trunk
        group name for the input of that group, ``"pre_logits"`` for pooled
        features, ``"head"`` for the embedding (cached activations); set
        only through ``_activation_cache.enter``/``leave``.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import get_backbone
    >>> from sktransfer.finetune import FineTuneNetwork
    >>> net = FineTuneNetwork(get_backbone("tiny_convnet", weights=None), n_classes=3).eval()
    >>> images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    >>> net(images).shape
    torch.Size([2, 3])
    >>> embedding = net.forward_between(images, None, "head")
    >>> torch.allclose(net.forward_suffix(embedding, "head"), net(images))
    True
    """

    def __init__(self, backbone: Backbone, n_classes: int, dropout: float = 0.2, batchnorm: str = "frozen") -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.num_features, int(n_classes)))
        self.batchnorm = batchnorm
        self.frozen_groups = list(backbone.layer_groups)
        self.input_start = None
        self.register_buffer("class_order", None)
        self.register_load_state_dict_pre_hook(_check_class_order)

    def set_classes(self, classes: Sequence) -> None:
        """Record which class each output of the head stands for, in order.

        It is kept in the state dict (buffer ``class_order``: the names as
        UTF-8 JSON), so saved parameters carry it, and loading parameters
        saved for another order or set of classes is a ValueError naming
        both, rather than predictions silently swapped.
        """
        encoded = json.dumps([str(c) for c in classes]).encode()
        self.class_order = torch.tensor(list(encoded), dtype=torch.uint8)

    def class_names(self) -> list[str] | None:
        """The classes recorded by :meth:`set_classes`, or None."""
        return None if self.class_order is None else _decode_class_order(self.class_order)

    def positions(self) -> list:
        """Where a tensor can enter, in forward order (see ``input_start``).

        None (uint8 images), each trunk group's input, the pooled features
        (``"pre_logits"``), the embedding (``"head"``).
        """
        return [None, *self.backbone.group_names, "pre_logits", HEAD]

    def forward_between(self, x: torch.Tensor, start: str | None, end: str) -> torch.Tensor:
        """Map the input at position ``start`` to the input at position ``end``.

        Positions are those of ``input_start``; ``start`` must come first.
        """
        order = self.positions()
        i, j = order.index(start), order.index(end)
        if start is None:
            x = self.backbone.preprocessing.normalize(x)
            i = 1
        trunk = [name for name in order[i:j] if name in self.backbone.groups]
        if trunk:
            x = self.backbone.forward_trunk(x, start=trunk[0], stop=trunk[-1])
        pooled = order.index("pre_logits")
        if i < pooled <= j:
            x = self.backbone.pool(x)
        if i <= pooled < j:
            x = self.backbone.pre_logits(x)
        return x

    def forward_suffix(self, x: torch.Tensor, start: str | None) -> torch.Tensor:
        """Run the network from ``start`` (see ``input_start``) to the logits."""
        return self.head(self.forward_between(x, start, HEAD))

    def forward(self, x: torch.Tensor, start: str | None = _INPUT_START) -> torch.Tensor:
        """The logits of ``x``, which enters at ``start`` (default: ``input_start``)."""
        return self.forward_suffix(x, self.input_start if start is _INPUT_START else start)

    def train(self, mode: bool = True) -> FineTuneNetwork:
        super().train(mode)
        if mode and self.batchnorm == "frozen":
            # Frozen groups must compute exactly what they computed in
            # pretraining: running BatchNorm statistics, no stochastic depth.
            for name in self.frozen_groups:
                self.backbone.layer_group(name).eval()
        return self


def _decode_class_order(tensor):
    return json.loads(bytes(tensor.cpu().tolist()).decode())


def _check_class_order(module, state_dict, prefix, *args):
    # A load_state_dict pre-hook: before any tensor is copied, so a mismatch
    # leaves the network as it was.
    saved = state_dict.get(prefix + "class_order")
    if saved is None or module.class_order is None:
        return
    saved_names, names = _decode_class_order(saved), module.class_names()
    if saved_names != names:
        raise ValueError(
            f"these parameters were trained for the classes {saved_names} in that order, and this network's "
            f"classes are {names}: its predictions would name the wrong classes. Pass classes={saved_names}."
        )


def resolve_unfreeze(unfreeze: int | str, backbone: Backbone) -> int:
    """``unfreeze`` as a number of layer groups, checked against the backbone."""
    groups = backbone.layer_groups
    if unfreeze == "all":
        return len(groups)
    if unfreeze > len(groups):
        raise ValueError(
            f"unfreeze={unfreeze} but {backbone.name} has only {len(groups)} layer groups "
            f"{groups}; use at most {len(groups)} or 'all'"
        )
    return int(unfreeze)


def trainable_groups(backbone: Backbone, n_unfrozen: int) -> list:
    """The last ``n_unfrozen`` layer groups, in forward order."""
    groups = backbone.layer_groups
    return groups[len(groups) - n_unfrozen :] if n_unfrozen else []


def set_trainable(network: FineTuneNetwork, n_unfrozen: int) -> None:
    """Freeze all layer groups but the last ``n_unfrozen``; the head always trains."""
    backbone = network.backbone
    trainable = set(trainable_groups(backbone, n_unfrozen))
    for name in backbone.layer_groups:
        flag = name in trainable
        for p in backbone.layer_group(name).parameters():
            p.requires_grad_(flag)
    for p in network.head.parameters():
        p.requires_grad_(True)
    network.frozen_groups = [g for g in backbone.layer_groups if g not in trainable]


def suffix_start(network: FineTuneNetwork, n_unfrozen: int) -> str | None:
    """Where the trainable suffix begins: the ``input_start`` for cached activations.

    None when the whole trunk trains (nothing worth caching).
    """
    groups = network.backbone.layer_groups
    if n_unfrozen == 0:
        return HEAD
    first = groups[len(groups) - n_unfrozen]
    if first == network.backbone.group_names[0]:
        return None
    return first


def param_groups(network: FineTuneNetwork, lr: float, lr_decay: float) -> list[dict]:
    """Optimizer param groups: the head at ``lr``, group k from the end at ``lr * lr_decay**k``.

    Every layer group with parameters gets its own param group (frozen or
    not), each dict carrying a ``"name"`` key. Returns them head first.
    """
    groups = [{"name": HEAD, "params": list(network.head.parameters()), "lr": lr}]
    for k, name in enumerate(reversed(network.backbone.layer_groups), start=1):
        params = list(network.backbone.layer_group(name).parameters())
        if params:
            groups.append({"name": name, "params": params, "lr": lr * lr_decay**k})
    return groups

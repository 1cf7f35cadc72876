"""Which part of the network trains, when, and how fast.

* :class:`FineTuneNetwork`: a backbone plus a new linear head, which can run
  from any layer-group boundary (so cached activations can enter midway) and
  keeps frozen groups in eval mode.
* :func:`trainable_groups` / :func:`set_trainable`: the last ``unfreeze``
  layer groups train, the rest is frozen through ``requires_grad``.
* :func:`param_groups`: one optimizer param group per layer group, with the
  head at ``lr`` and group k from the end at ``lr * lr_decay**k``. Every
  parameter is in the optimizer from the start; freezing only switches
  ``requires_grad`` (a parameter without gradient is skipped by the
  optimizer), so resuming never meets param groups added mid-training.
* :class:`PhaseSwitch`: the skorch callback that moves from the head phase to
  the fine-tuning phase at epoch ``head_epochs``.
* :class:`CosineDecay`: the skorch callback that lowers every group's rate
  along a half cosine over the fine-tuning phase, keeping their ratios.
"""

from __future__ import annotations

import math
import time

import torch
from skorch.callbacks import Callback
from torch import nn

HEAD = "head"


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
        features, ``"head"`` for the embedding (cached activations).
    """

    def __init__(self, backbone, n_classes, dropout=0.2, batchnorm="frozen"):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.num_features, int(n_classes)))
        self.batchnorm = batchnorm
        self.frozen_groups = list(backbone.layer_groups)
        self.input_start = None

    def _positions(self):
        # Where a tensor can enter: None (uint8 images), each trunk group's
        # input, the pooled features ("pre_logits"), the embedding ("head").
        return [None, *self.backbone.group_names, "pre_logits", HEAD]

    def forward_between(self, x, start, end):
        """Map the input at position ``start`` to the input at position ``end``.

        Positions are those of ``input_start``; ``start`` must come first.
        """
        order = self._positions()
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

    def forward_prefix(self, images, start):
        """uint8 images -> the input expected by ``forward_suffix(., start)``."""
        return self.forward_between(images, None, start)

    def forward_suffix(self, x, start):
        """Run the network from ``start`` (see ``input_start``) to the logits."""
        return self.head(self.forward_between(x, start, HEAD))

    def forward(self, x):
        return self.forward_suffix(x, self.input_start)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.batchnorm == "frozen":
            # Frozen groups must compute exactly what they computed in
            # pretraining: running BatchNorm statistics, no stochastic depth.
            for name in self.frozen_groups:
                self.backbone.layer_group(name).eval()
        return self


def n_layer_groups(backbone):
    return len(backbone.layer_groups)


def resolve_unfreeze(unfreeze, backbone):
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


def trainable_groups(backbone, n_unfrozen):
    """The last ``n_unfrozen`` layer groups, in forward order."""
    groups = backbone.layer_groups
    return groups[len(groups) - n_unfrozen :] if n_unfrozen else []


def set_trainable(network, n_unfrozen):
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


def suffix_start(network, n_unfrozen):
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


def param_groups(network, lr, lr_decay):
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


class PhaseSwitch(Callback):
    """Switch from the head phase to fine-tuning at epoch ``net.head_epochs``.

    The phase follows from the number of epochs in ``net.history``, so a
    resumed or ``warm_start`` fit continues in the phase it stopped in. Each
    epoch records ``phase`` (1 or 2) and, when activations were (re)cached at
    its start, ``cache_dur`` (seconds) in the history.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.phase_ = None

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        epochs_done = len(net.history) - 1
        phase = 1 if epochs_done < net.head_epochs else 2
        if phase != self.phase_:
            t0 = time.perf_counter()
            net.enter_phase(phase, [dataset_train, dataset_valid])
            net.history.record("cache_dur", time.perf_counter() - t0)
            self.phase_ = phase
        net.history.record("phase", phase)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        net.leave_training()
        self.phase_ = None


class CosineDecay(Callback):
    """Decay the learning rates along a half cosine over the fine-tuning phase.

    Every param group's rate is its ``param_groups`` value times
    ``(1 + cos(pi * t)) / 2``, where ``t`` goes from 0 at the first batch of
    phase 2 to 1 at the end of the run, batch by batch; phase 1 runs at the
    full rates. The run is the ``max_epochs`` epochs that ``fit`` (or each
    ``partial_fit`` or ``warm_start`` call) starts, so a run cut short (early
    stopping, or ``fit_loop(epochs=k)`` with ``k < max_epochs``) has followed
    exactly the first ``k`` epochs of the full schedule.

    Decaying the rate to zero lets the last epochs settle instead of jumping
    around a minimum (Loshchilov & Hutter, "SGDR", ICLR 2017); with a handful
    of epochs on a few hundred images that is what a user would otherwise
    tune by hand.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.first_epoch_ = len(net.history)
        self.end_epoch_ = self.first_epoch_ + net.max_epochs

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        self.epoch_ = len(net.history) - 1
        batch_size = net.get_params_for("iterator_train").get("batch_size", net.batch_size)
        n = len(dataset_train) if dataset_train is not None else 0
        self.n_batches_ = max(1, math.ceil(n / batch_size)) if batch_size and batch_size > 0 else 1
        self.batch_ = 0

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training or net.lr_schedule != "cosine":
            return
        net.apply_learning_rates(scale=self.scale(net.head_epochs))
        self.batch_ += 1

    def scale(self, head_epochs):
        """The factor on the rates for the current batch."""
        start = max(self.first_epoch_, head_epochs)
        if self.epoch_ < start or self.end_epoch_ <= start:
            return 1.0
        progress = (self.epoch_ - start + min(self.batch_ / self.n_batches_, 1.0)) / (self.end_epoch_ - start)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # Leave the optimizer at the configured rates (a later warm start
        # starts its own schedule from there).
        net.apply_learning_rates()


def fit_linear_probe(linear, embeddings, y, *, class_weight=None, C=1.0, max_iter=200):
    """Fit ``linear`` as an L2-penalised multinomial logistic regression, in place.

    The objective is scikit-learn's ``LogisticRegression(C=C)`` divided by
    the number of samples: the mean (class-weighted) cross-entropy plus
    ``||W||^2 / (2 C n)``; the bias is not penalised. L-BFGS over the whole
    (small) training set converges in a fraction of a second, where a few
    epochs of mini-batch SGD leave a new head far from its optimum.

    Parameters
    ----------
    linear : nn.Linear
    embeddings : Tensor (n, features)
    y : Tensor (n,) of class indices
    class_weight : Tensor (n_classes,) or None
    C : float, default=1.0
    max_iter : int, default=200
    """
    x = embeddings.detach().to(linear.weight.device, torch.float32)
    y = y.to(x.device)
    weight = None if class_weight is None else class_weight.to(x.device, torch.float32)
    penalty = 1.0 / (2.0 * C * len(x))
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
    opt = torch.optim.LBFGS(
        [linear.weight, linear.bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
        tolerance_grad=1e-6, tolerance_change=1e-9,
    )

    def closure():
        opt.zero_grad()
        logits = x @ linear.weight.T + linear.bias
        loss = nn.functional.cross_entropy(logits, y, weight=weight) + penalty * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    opt.zero_grad(set_to_none=True)
    return linear

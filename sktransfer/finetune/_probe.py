"""Linear probing: the new head as the logistic regression of the frozen embeddings.

"Linear probing, then fine-tuning" (LP-FT, Kumar et al., ICLR 2022): a head
fitted to convergence on the frozen embeddings before fine-tuning distorts
the pretrained features less than a random head trained by the optimizer.
"""

from __future__ import annotations

import torch
from torch import nn

from ._activation_cache import ActivationCache
from ._datasets import TrainingDataset
from ._network import HEAD


@torch.no_grad()
def probe_head(
    network: nn.Module, train, *, device: torch.device | str, batch_size: int, class_weight=None, C: float = 1.0
) -> None:
    """Fit ``network``'s head on the frozen embeddings of the ``train`` dataset.

    The embeddings come from the activation cache when training runs from
    cached activations (the short rest of the frozen network away), else
    they are computed once, aside. Nothing happens when ``train`` is not a
    :class:`TrainingDataset` or is empty, or when the embeddings would exceed
    the cache's memory bound (the head then starts at random).

    Parameters
    ----------
    network : FineTuneNetwork
    train : Dataset
        The training split.
    device : torch.device
    batch_size : int
        Batch size of the forward passes computing embeddings.
    class_weight : array-like of shape (n_classes,) or None
    C : float, default=1.0
        Inverse regularisation strength (see :func:`fit_linear_probe`).
    """
    if not isinstance(train, TrainingDataset) or len(train) == 0:
        return
    store, rows = train.images, torch.as_tensor(train.indices)
    cache = store.cache
    compute = {"device": device, "batch_size": batch_size}
    if cache.active not in (None, HEAD):
        cache.fill(network, store, HEAD, source=cache.active, **compute)
    elif cache.active is None:
        cache = ActivationCache()
        if not cache.fill(network, store, HEAD, **compute):
            return
    fit_linear_probe(
        network.head[-1],
        cache.values[HEAD][rows],
        train.y[rows],
        class_weight=None if class_weight is None else torch.as_tensor(class_weight),
        C=C,
    )


def fit_linear_probe(
    linear: nn.Linear,
    embeddings: torch.Tensor,
    y: torch.Tensor,
    *,
    class_weight: torch.Tensor | None = None,
    C: float = 1.0,
    max_iter: int = 200,
) -> nn.Linear:
    """Fit ``linear`` as an L2-penalised multinomial logistic regression, in place.

    The objective is scikit-learn's ``LogisticRegression(C=C)`` divided by
    the number of samples: the mean (class-weighted) cross-entropy plus
    ``||W||^2 / (2 C n)``; the bias is not penalised. L-BFGS over the whole
    (small) training set reaches the optimum of this convex problem, where a
    few epochs of mini-batch SGD leave a new head far from it.

    Parameters
    ----------
    linear : nn.Linear
    embeddings : Tensor (n, features)
    y : Tensor (n,) of class indices
    class_weight : Tensor (n_classes,) or None
    C : float, default=1.0
    max_iter : int, default=200

    Returns
    -------
    nn.Linear
        ``linear``, fitted.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sktransfer.finetune._probe import fit_linear_probe
    >>> x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    >>> head = fit_linear_probe(nn.Linear(1, 2), x, torch.tensor([0, 0, 1, 1]))
    >>> (x @ head.weight.T + head.bias).argmax(1).tolist()
    [0, 0, 1, 1]
    """
    x = embeddings.detach().to(linear.weight.device, torch.float32)
    y = y.to(x.device)
    weight = None if class_weight is None else class_weight.to(x.device, torch.float32)
    penalty = 1.0 / (2.0 * C * len(x))
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
    opt = torch.optim.LBFGS(
        [linear.weight, linear.bias],
        lr=1.0,
        max_iter=max_iter,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
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

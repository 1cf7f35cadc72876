"""A tiny random convolutional backbone, for tests and quick experiments."""

from __future__ import annotations

import torch
from torch import nn

from ._base import Backbone, Lambda, Preprocessing, global_avg


def _block(c_in, c_out, stride):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def make_tiny_backbone(
    *, width: int = 8, num_stages: int = 3, image_size: int = 32, num_classes: int = 10, seed: int = 0
) -> Backbone:
    """A small ConvNet with a stem and ``num_stages`` stages, randomly initialised.

    It follows the same layer-group layout as the real backbones (``stem``,
    ``stage1``...), so estimators can be exercised in milliseconds. The
    initialisation is seeded: two calls with the same arguments give the same
    network.

    Parameters
    ----------
    width : int, default=8
        Channels of the stem; each stage doubles them.
    num_stages : int, default=3
    image_size : int, default=32
        Crop size of its preprocessing (resize to ``image_size + 4``).
    num_classes : int, default=10
        Outputs of the stand-in "pretrained" head.
    seed : int, default=0

    Returns
    -------
    Backbone

    Examples
    --------
    >>> from sktransfer.backbones import make_tiny_backbone
    >>> make_tiny_backbone().layer_groups
    ['stem', 'stage1', 'stage2', 'stage3']
    """
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        groups = [("stem", _block(3, width, 2))]
        c = width
        for i in range(1, num_stages + 1):
            groups.append((f"stage{i}", _block(c, 2 * c, 2)))
            c *= 2
        head = nn.Linear(c, num_classes)
    finally:
        torch.random.set_rng_state(gen_state)
    return Backbone(
        name="tiny_convnet",
        groups=groups,
        pool=Lambda(global_avg, "global_avg"),
        head=head,
        num_features=c,
        preprocessing=Preprocessing(resize_size=image_size + 4, crop_size=image_size),
    ).eval()

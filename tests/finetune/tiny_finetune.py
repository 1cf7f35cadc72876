"""The tiny backbone, data and classifier factory the fine-tuning tests share.

A random-init backbone of three conv groups on 16 random 32x32 images keeps
every fit well under a second on 2 CPU cores.
"""

import numpy as np
import torch
from torch import nn

from sktransfer import FineTuneClassifier, FrozenFeatureClassifier, PretrainedFeatureExtractor
from sktransfer.backbones import Backbone, Preprocessing
from sktransfer.backbones._base import Lambda, global_avg

GROUPS = ["stem", "stage1", "stage2"]


def _block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


def make_tiny_backbone(seed=0):
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    backbone = Backbone(
        name="tiny",
        groups=[("stem", _block(3, 4)), ("stage1", _block(4, 8)), ("stage2", _block(8, 8))],
        pool=Lambda(global_avg),
        num_features=8,
        preprocessing=Preprocessing(resize_size=32, crop_size=28),
    )
    torch.random.set_rng_state(generator_state)
    return backbone


def make_data(per_class=8, n_classes=2, seed=0):
    """``per_class`` images of each class; later classes are brighter (a learnable signal)."""
    rng = np.random.default_rng(seed)
    names = np.array(["ant", "bee", "wasp", "fly"][:n_classes], dtype=object)
    y = np.tile(names, per_class)
    X = rng.integers(0, 196, size=(len(y), 32, 32, 3), dtype=np.uint8)
    for k in range(1, n_classes):
        X[y == names[k]] += np.uint8(30 * k)
    return X, y


def tiny_recipe(**params):
    """The check's frozen contender on the seeded tiny network: one view per image."""
    extractor = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch")
    return FrozenFeatureClassifier(extractor=extractor, **{"n_views": 1, "random_state": 0, **params})


def make_clf(backbone, **params):
    defaults = {
        "model": backbone,
        "weights": None,
        "max_epochs": 3,
        "head_epochs": 1,
        "batch_size": 4,
        "train_split": None,
        "verbose": 0,
        "random_state": 0,
        "num_workers": 0,
        "device": "cpu",
        # The internal check (fine-tuning against the frozen recipe, by
        # cross-validation) fine-tunes once per fold; the tests of the
        # training machinery fit once. test_finetune_check.py tests it.
        "check_folds": None,
    }
    defaults.update(params)
    return FineTuneClassifier(**defaults)

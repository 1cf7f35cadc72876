"""Helpers of the storage tests (also imported by their subprocesses)."""

import numpy as np
from PIL import Image


def write_images(folder, n, *, seed=0, size=(20, 16)):
    """n distinct PNG files in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def tiny(**params):
    from sktransfer import PretrainedFeatureExtractor

    defaults = dict(model="tiny_convnet", weights=None, num_workers=0, engine="torch", batch_size=4)
    return PretrainedFeatureExtractor(**{**defaults, **params})

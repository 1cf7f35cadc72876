"""Tiny image folders for the command-line tests."""

import os

import numpy as np
from PIL import Image

# A random-init backbone: the tests check the command line, not accuracy.
TINY = ["--model", "tiny_convnet", "--weights", "none"]


def write_images(root, layout, size=24, seed=0):
    """``layout``: relative folder -> number of images; class "dark*" images are dark, others light."""
    rng = np.random.default_rng(seed)
    for folder, count in layout.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        base = 40 if os.path.basename(folder).startswith("dark") else 210
        for index in range(count):
            pixels = np.clip(rng.normal(base, 15, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, folder, f"{index}.png"))
    return root

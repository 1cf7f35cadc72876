"""Image files the worker processes can read: paths in a temporary folder."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Twelve small PNG files of different sizes, as path strings."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = []
    for i in range(12):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (36 + i, 40, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return out

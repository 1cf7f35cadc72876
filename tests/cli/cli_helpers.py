"""Tiny image folders for the command-line tests, and fixtures running ``main(argv)``.

The fixtures live here rather than in a conftest.py: with ``--doctest-modules``
a third ``conftest`` module basename would clash with the other folders'.
"""

import os
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from sktransfer.cli import main

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


@dataclass
class Outcome:
    status: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """``run_cli(*argv)``: main's exit status and what it printed, run from `tmp_path`."""
    monkeypatch.chdir(tmp_path)

    def run(*argv):
        status = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return Outcome(status, captured.out, captured.err)

    return run


@pytest.fixture
def split_folder(tmp_path):
    """``training_set/`` and ``test_set/`` of two classes, 4 images each."""
    layout = {f"{split}/{name}": 4 for split in ("training_set", "test_set") for name in ("dark", "light")}
    return write_images(tmp_path / "data", layout)

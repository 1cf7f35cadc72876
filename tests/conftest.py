"""Shared fixtures: where the real data lives, and tiny inputs."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir():
    """The folder holding ``hymenoptera/`` and ``flowers/``, or None."""
    env = os.environ.get("SKTRANSFER_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if (path / "hymenoptera").is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def data_dir():
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "real image data not found: set SKTRANSFER_DATA to a folder holding "
            "hymenoptera/ and flowers/, or place it at ../shared/data"
        )
    return path


@pytest.fixture(scope="session")
def reference_dir():
    path = REPO_ROOT.parent / "shared" / "reference"
    if not (path / "efficientnet_lite0_hymenoptera.npz").is_file():
        pytest.skip(f"reference arrays not found in {path}")
    return path


@pytest.fixture(scope="module")
def tiny_images():
    """Eight small random RGB uint8 images, HWC, of two sizes."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(40 + 4 * (i % 2), 48, 3), dtype=np.uint8) for i in range(8)]


@pytest.fixture(scope="session")
def flower_embeddings(data_dir):
    """EfficientNet-Lite0 embeddings of 60 flowers photos per class (fixed pick)."""
    from sktransfer import PretrainedFeatureExtractor
    from sktransfer.datasets import load_image_folder

    paths, labels = load_image_folder(data_dir / "flowers")
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), 60, replace=False) for c in np.unique(labels)]
    )
    X = PretrainedFeatureExtractor().fit_transform([paths[i] for i in rows])
    return X, np.asarray(labels)[rows]

"""Helpers of the storage tests (also imported by their subprocesses)."""

import numpy as np
import pytest
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


# Fixtures: test modules import them by name (a conftest.py here would clash
# with tests/finetune/conftest.py under pytest's default import mode).


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """11 PNG paths (not a multiple of the batch size)."""
    return write_images(tmp_path_factory.mktemp("photos"), 11)


@pytest.fixture(scope="module")
def computed(photos):
    """Their embeddings without a store."""
    return tiny().fit(photos).transform(photos)


@pytest.fixture
def decode_count(monkeypatch):
    """Which images were decoded (the decoder's calls to decode one item), named by their source."""
    import inspect

    import sktransfer.image._batch_decoder as batch_decoder

    calls = []
    real = batch_decoder.decode_item_or_error
    signature = inspect.signature(real)

    def counting(*args, **kwargs):
        # With a store, files reach the decoder as the bytes read for their
        # key, named by their path (the source).
        bound = signature.bind(*args, **kwargs)
        calls.append(bound.arguments.get("source") or bound.arguments["item"])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_decoder, "decode_item_or_error", counting)
    return calls

"""Small photo files and a tiny extractor shared by the storage tests."""

import pytest
from storage_helpers import tiny, write_images


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
    """How many images were decoded (counts calls of load_image by the decoder)."""
    import sktransfer.image._batch_decoder as batch_decoder

    calls = []
    real = batch_decoder.load_image

    def counting(item, **kwargs):
        calls.append(item)
        return real(item, **kwargs)

    monkeypatch.setattr(batch_decoder, "load_image", counting)
    return calls

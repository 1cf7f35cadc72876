"""JPEGs decoded to tensors by decode_jpeg: PIL's pixels, PIL's errors, PIL where it must."""

import builtins
import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import sktransfer.image._jpeg as jpeg_path
from sktransfer.image import ImageLoadError
from sktransfer.image._batch_decoder import decode_all
from sktransfer.image._decode import load_image, load_pixels
from sktransfer.image._transforms import ResizeCenterCrop, pil_to_chw

# decode_jpeg is used once torchvision is imported; these tests import it.
pytest.importorskip("torchvision.io")


def _photo(width=48, height=32, seed=0):
    """A smooth image with some detail, as JPEG compresses photos."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def _jpeg(image, orientation=None, **save):
    buffer = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif
    image.save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", [None, 1, 2, 3, 4, 5, 6, 7, 8])
def test_an_rgb_jpeg_comes_back_as_a_tensor_with_pils_upright_pixels(orientation, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(_photo(), orientation))
    pixels = load_pixels(path)
    assert isinstance(pixels, torch.Tensor) and pixels.dtype == torch.uint8
    expected = pil_to_chw(load_image(path))
    assert pixels.shape == expected.shape  # orientations 5..8 swap the sides
    torch.testing.assert_close(pixels, expected, rtol=0, atol=0)


@pytest.mark.parametrize("save", [{"progressive": True}, {"subsampling": 0}, {"subsampling": 2}])
def test_progressive_and_subsampled_jpegs_decode_to_the_same_pixels(save):
    data = _jpeg(_photo(seed=1), **save)
    torch.testing.assert_close(load_pixels(data), pil_to_chw(load_image(data)), rtol=0, atol=0)


def test_a_grey_jpeg_is_repeated_over_three_channels_like_pil():
    data = _jpeg(_photo().convert("L"))
    pixels = load_pixels(data)
    assert isinstance(pixels, torch.Tensor) and pixels.shape[0] == 3
    torch.testing.assert_close(pixels, pil_to_chw(load_image(data)), rtol=0, atol=0)


def _png():
    buffer = io.BytesIO()
    _photo().save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "encode, why",
    [
        (lambda: _jpeg(_photo().convert("CMYK")), "CMYK goes through PIL's colour conversion"),
        (_png, "not a JPEG"),
    ],
)
def test_other_files_come_back_as_pil_images(encode, why):
    assert isinstance(load_pixels(encode()), Image.Image), why


def test_a_jpeg_that_draft_mode_shrinks_stays_with_pil():
    data = _jpeg(_photo(80, 64))
    shrunk = load_pixels(data, draft_size=(32, 32))  # 2x the draft size: decoded at 1/2 scale
    assert isinstance(shrunk, Image.Image) and shrunk.size == (40, 32)
    assert isinstance(load_pixels(data, draft_size=(41, 41)), torch.Tensor)  # less than 2x: full size


def test_draft_mode_is_judged_on_the_upright_image():
    # Stored 80x40 and rotated by 90 degrees (orientation 6): upright 40x80.
    data = _jpeg(_photo(80, 40), orientation=6)
    assert isinstance(load_pixels(data, draft_size=(20, 40)), Image.Image)
    assert isinstance(load_pixels(data, draft_size=(40, 20)), torch.Tensor)


def test_a_truncated_jpeg_fails_with_pils_error(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(_jpeg(_photo(96, 64))[:-400])
    with pytest.raises(ImageLoadError) as from_pixels:
        load_pixels(path)
    with pytest.raises(ImageLoadError) as from_image:
        load_image(path)
    assert str(from_pixels.value) == str(from_image.value)
    assert "truncated" in str(from_pixels.value)


def test_the_decoders_batches_equal_the_pil_decoded_ones(tmp_path):
    paths = []
    for i, orientation in enumerate([None, 6, 3]):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(_jpeg(_photo(40 + 8 * i, 30, seed=i), orientation))
    crop = ResizeCenterCrop(24, 20)
    assert crop.takes_tensors
    batch, failures = decode_all(paths, crop, num_workers=2)
    assert not failures
    expected = torch.stack([crop(load_image(p)) for p in paths])
    torch.testing.assert_close(batch, expected, rtol=0, atol=0)


def test_a_transform_that_resizes_in_pil_is_given_pil_images(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(_photo()))
    crop = ResizeCenterCrop(24, 20, "bicubic")
    assert not crop.takes_tensors
    batch, _ = decode_all([path], crop)
    torch.testing.assert_close(batch[0], crop(load_image(path)), rtol=0, atol=0)
    with pytest.raises(TypeError, match="resizes in PIL: pass a PIL image"):
        crop(load_pixels(path))


@pytest.mark.real_data
def test_real_photos_decode_to_the_same_pixels(data_dir):
    paths = sorted((data_dir / "hymenoptera" / "val").rglob("*.jpg"))[::8]
    assert paths
    as_tensors = 0
    for path in paths:
        pixels = load_pixels(path, draft_size=(512, 512))
        reference = load_image(path, draft_size=(512, 512))
        if isinstance(pixels, torch.Tensor):
            as_tensors += 1
            torch.testing.assert_close(pixels, pil_to_chw(reference), rtol=0, atol=0, msg=str(path))
    # These photos are about 500 px: all but the odd large one skip draft mode.
    assert as_tensors >= len(paths) - 2


def test_without_torchvision_imported_jpegs_stay_with_pil(monkeypatch):
    monkeypatch.delitem(sys.modules, "torchvision.io")
    data = _jpeg(_photo())
    assert isinstance(load_pixels(data), Image.Image)


def test_a_job_large_enough_imports_the_decoder(monkeypatch):
    imported = []
    monkeypatch.delitem(sys.modules, "torchvision.io")
    real_import = builtins.__import__

    def recording_import(name, *args, **kwargs):
        if name == "torchvision.io":
            imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", recording_import)
    jpeg_path.prepare_for(jpeg_path.DECODE_JPEG_MIN_IMAGES - 1)
    assert imported == []
    jpeg_path.prepare_for(jpeg_path.DECODE_JPEG_MIN_IMAGES)
    assert imported == ["torchvision.io"] and "torchvision.io" in sys.modules

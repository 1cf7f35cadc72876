"""The one resize/crop and the one normalisation match torchvision's."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from sktransfer.image._transforms import ResizeCenterCrop, normalize_batch, pil_to_chw

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _noise(width, height, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_pil_to_chw_keeps_pixels_and_owns_its_memory():
    image = _noise(5, 3)
    tensor = pil_to_chw(image)
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 3, 5)
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), np.asarray(image))
    assert tensor.is_contiguous()


def test_normalize_batch_equals_to_tensor_and_normalize():
    batch = torch.stack([pil_to_chw(_noise(6, 4, seed)) for seed in range(3)])
    expected = v2.Normalize(MEAN, STD)(batch.float() / 255)
    torch.testing.assert_close(normalize_batch(batch, MEAN, STD), expected, rtol=0, atol=1e-5)


def test_normalize_batch_takes_tensors_floats_and_a_dtype():
    batch = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(1, 3, 2, 1)
    as_float = normalize_batch(batch.float(), MEAN, STD)
    as_buffer = normalize_batch(batch, torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1))
    torch.testing.assert_close(as_float, as_buffer, rtol=0, atol=0)
    np.testing.assert_allclose(as_float[0, :, 1, 0].numpy(), (1 - np.array(MEAN)) / STD, rtol=1e-6)
    assert normalize_batch(batch, MEAN, STD, dtype=torch.bfloat16).dtype == torch.bfloat16


def _torchvision_on_pil(interpolation):
    mode = getattr(v2.InterpolationMode, interpolation.upper())
    return v2.Compose([v2.Resize(20, interpolation=mode, antialias=True), v2.CenterCrop(16), v2.PILToTensor()])


SIZES = [(40, 30), (30, 40), (17, 17), (64, 23), (12, 9)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_pil_resize_crop_equals_torchvision_on_pil_images(size, interpolation):
    image = _noise(*size)
    ours = pil_to_chw(ResizeCenterCrop(20, 16, interpolation).resize_crop(image))
    torch.testing.assert_close(ours, _torchvision_on_pil(interpolation)(image), rtol=0, atol=0)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["bicubic", "nearest"])
def test_calling_resizes_bicubic_and_nearest_in_pil(size, interpolation):
    image = _noise(*size)
    crop = ResizeCenterCrop(20, 16, interpolation)
    assert crop.resampler == "pil"
    torch.testing.assert_close(crop(image), _torchvision_on_pil(interpolation)(image), rtol=0, atol=0)


@pytest.mark.parametrize("size", SIZES)
def test_calling_resizes_bilinear_on_the_tensor_within_one_level_of_pil(size):
    image = _noise(*size)
    before = np.asarray(image).copy()
    crop = ResizeCenterCrop(20, 16)
    ours = crop(image)
    assert crop.resampler == "tensor"
    assert ours.dtype == torch.uint8 and ours.shape == (3, 16, 16) and ours.is_contiguous()
    on_tensor = v2.Compose([v2.PILToTensor(), v2.Resize(20, antialias=True), v2.CenterCrop(16)])(image)
    torch.testing.assert_close(ours, on_tensor, rtol=0, atol=0)
    difference = (ours.int() - _torchvision_on_pil("bilinear")(image).int()).abs()
    assert difference.max() <= 1
    np.testing.assert_array_equal(np.asarray(image), before)


def test_crop_larger_than_image_pads_with_black_like_torchvision():
    image = _noise(6, 4)
    crop = ResizeCenterCrop(4, 8)
    ours = crop(image)
    theirs = v2.Compose([v2.CenterCrop(8), v2.PILToTensor()])(crop.resize(image))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert ours[:, 0, :].sum().item() == 0


def test_crop_larger_than_a_resized_image_pads_with_black_like_torchvision():
    image = _noise(12, 6)
    ours = ResizeCenterCrop(4, 8)(image)
    theirs = v2.Compose([v2.PILToTensor(), v2.Resize(4, antialias=True), v2.CenterCrop(8)])(image)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert ours[:, :2, :].sum().item() == 0


def test_resize_leaves_an_image_of_the_right_size_alone():
    image = _noise(20, 30)
    assert ResizeCenterCrop(20, 16).resize(image) is image


def test_draft_size_leaves_a_two_times_margin():
    assert ResizeCenterCrop(256, 224).draft_size == (512, 512)


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match=r"interpolation must be one of \['bicubic', 'bilinear', 'nearest'\]"):
        ResizeCenterCrop(8, 8, "lanczos")


def test_repr_names_the_parameters():
    assert repr(ResizeCenterCrop(8, 6, "nearest")) == (
        "ResizeCenterCrop(resize_size=8, crop_size=6, interpolation='nearest')"
    )


@pytest.mark.parametrize("crop_pct", [1.0, 0.9])
@pytest.mark.parametrize("crop_mode", ["squash", "border", "center"])
@pytest.mark.parametrize("size", [(120, 40), (50, 130), (33, 40)])
def test_crop_modes_equal_timms_eval_transform(size, crop_mode, crop_pct):
    import math

    from timm.data.transforms_factory import transforms_imagenet_eval

    image, fill = _noise(*size), (124, 116, 104)
    for interpolation in ("bicubic", "bilinear"):  # resized in PIL, then on the uint8 tensor
        expected = transforms_imagenet_eval(
            img_size=48,
            crop_pct=crop_pct,
            crop_mode=crop_mode,
            interpolation=interpolation,
            mean=tuple(v / 255 for v in fill),
            normalize=False,
        )(image)
        crop = ResizeCenterCrop(
            math.floor(48 / crop_pct),
            48,
            interpolation,
            crop_mode=crop_mode,
            fill=fill if crop_mode == "border" else (0, 0, 0),
        )
        got = crop(image)
        assert got.shape == expected.shape == (3, 48, 48)
        # PIL's bicubic is timm's exactly; torch's uint8 bilinear kernel is within one level.
        bound = 0 if interpolation == "bicubic" else 1
        assert (got.int() - expected.int()).abs().max() <= bound, interpolation
        # The PIL path (resize_crop) is timm's on every filter.
        np.testing.assert_array_equal(pil_to_chw(crop.resize_crop(image)), expected)
        # The fine-tuner resizes once, then crops the stored image: the resize is idempotent.
        resized = crop.resize(image)
        assert crop.resize(resized).size == resized.size


def test_border_mode_pads_with_the_fill_colour_on_both_paths():
    crop = ResizeCenterCrop(48, 48, "bilinear", crop_mode="border", fill=(10, 200, 30))
    image = Image.new("RGB", (96, 32), (255, 255, 255))  # resized to 48x16: 16 rows of fill above and below
    for out in (crop(image), pil_to_chw(crop.resize_crop(image))):
        assert out[:, 0, 0].tolist() == [10, 200, 30] and out[:, 24, 24].tolist() == [255, 255, 255]


def test_unknown_crop_mode_and_bad_fill_are_refused():
    with pytest.raises(ValueError, match="crop_mode must be one of"):
        ResizeCenterCrop(8, 6, crop_mode="fit")
    with pytest.raises(ValueError, match="fill must be 3 integers"):
        ResizeCenterCrop(8, 6, fill=(0, 0))

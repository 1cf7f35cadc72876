"""Tests of the image input layer: decoding, mode conversion, containers, errors."""

import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from sktransfer.image._collections import check_images, infer_image_shape, rows_to_images
from sktransfer.image._decode import (
    ImageLoadError,
    array_to_image,
    describe_source,
    load_image,
    to_rgb,
)

WHITE = (255, 255, 255)
RED = (255, 0, 0)


def _pixel(image, xy=(0, 0)):
    return image.getpixel(xy)


def _assert_rgb(image, size=None):
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    if size is not None:
        assert image.size == size


def _wide_grey(mode, value, dtype):
    """2x2 PIL image of a 16/32-bit/float mode holding `value` everywhere."""
    raw = np.full((2, 2), value, dtype=dtype).tobytes()
    return Image.frombytes(mode, (2, 2), raw)


def _noise_jpeg(path, size=(64, 64), **save_kwargs):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", **save_kwargs)
    return path


# --------------------------------------------------------------------- to_rgb


@pytest.mark.parametrize(
    "image, expected",
    [
        (Image.new("1", (2, 2), 1), WHITE),
        (Image.new("1", (2, 2), 0), (0, 0, 0)),
        (Image.new("L", (2, 2), 100), (100, 100, 100)),
        (Image.new("RGB", (2, 2), (1, 2, 3)), (1, 2, 3)),
        (Image.new("LA", (2, 2), (100, 255)), (100, 100, 100)),
        (Image.new("LA", (2, 2), (100, 0)), WHITE),
        (Image.new("RGBA", (2, 2), (255, 0, 0, 255)), RED),
        (Image.new("RGBA", (2, 2), (255, 0, 0, 0)), WHITE),
        (Image.new("CMYK", (2, 2), (0, 0, 0, 0)), WHITE),
        (Image.new("CMYK", (2, 2), (255, 0, 0, 0)), (0, 255, 255)),
    ],
    ids=[
        "1-white",
        "1-black",
        "L",
        "RGB",
        "LA-opaque",
        "LA-clear",
        "RGBA-opaque",
        "RGBA-clear",
        "CMYK-white",
        "CMYK-cyan",
    ],
)
def test_to_rgb_modes(image, expected):
    converted = to_rgb(image)
    _assert_rgb(converted, image.size)
    assert _pixel(converted) == expected


def test_to_rgb_half_transparent_black_is_composited_onto_white():
    converted = to_rgb(Image.new("RGBA", (2, 2), (0, 0, 0, 128)))
    assert all(abs(channel - 127) <= 1 for channel in _pixel(converted))


def test_to_rgb_ycbcr():
    converted = to_rgb(Image.new("YCbCr", (2, 2), (255, 128, 128)))
    assert all(channel >= 250 for channel in _pixel(converted))


def test_to_rgb_palette_without_and_with_transparency(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    palette_image.putpixel((1, 0), 1)
    assert _pixel(to_rgb(palette_image), (0, 0)) == RED
    assert _pixel(to_rgb(palette_image), (1, 0)) == (0, 0, 255)

    # Palette index 0 transparent, as GIF and PNG store it; through a file.
    path = tmp_path / "transparent.png"
    palette_image.save(path, transparency=0)
    reopened = load_image(path)
    assert _pixel(reopened, (0, 0)) == WHITE
    assert _pixel(reopened, (1, 0)) == (0, 0, 255)


@pytest.mark.parametrize(
    "mode, dtype",
    [("I;16", "<u2"), ("I;16B", ">u2"), ("I", "<i4")],
)
def test_to_rgb_16_bit_modes_scale_by_257_without_clipping(mode, dtype):
    assert _pixel(to_rgb(_wide_grey(mode, 65535, dtype))) == WHITE
    assert _pixel(to_rgb(_wide_grey(mode, 257 * 100, dtype))) == (100, 100, 100)
    # Clipping to 255 would turn 1000 white; scaling gives 1000/257 ~ 4.
    assert _pixel(to_rgb(_wide_grey(mode, 1000, dtype))) == (4, 4, 4)


def test_to_rgb_32_bit_mode_beyond_16_bit_uses_int32_range():
    assert _pixel(to_rgb(_wide_grey("I", 2**31 - 1, "<i4"))) == WHITE
    assert _pixel(to_rgb(_wide_grey("I", -(2**31), "<i4"))) == (0, 0, 0)


def test_to_rgb_float_mode():
    assert _pixel(to_rgb(_wide_grey("F", 0.5, "<f4"))) == (128, 128, 128)
    with pytest.raises(ImageLoadError, match=r"must lie in \[0, 1\].*max 1000"):
        to_rgb(_wide_grey("F", 1000.0, "<f4"))


def test_sixteen_bit_png_file(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((3, 3), 257 * 200, dtype=np.uint16)).save(path)
    assert _pixel(load_image(path)) == (200, 200, 200)


def test_cmyk_jpeg_file(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(path, quality=95)
    assert all(channel >= 250 for channel in _pixel(load_image(path)))


def test_animated_rgb_image_first_frame_survives_restoring_callers_frame(tmp_path):
    path = tmp_path / "animated.webp"
    frames = [Image.new("RGB", (4, 4), RED), Image.new("RGB", (4, 4), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True)
    with Image.open(path) as animated:
        if animated.mode != "RGB" or getattr(animated, "n_frames", 1) < 2:
            pytest.skip("this Pillow build does not read animated WebP as RGB")
        animated.seek(1)
        first = to_rgb(animated)
        assert animated.tell() == 1
        assert first is not animated
        assert _pixel(first) == RED


def test_animated_gif_gives_first_frame_and_keeps_callers_frame(tmp_path):
    path = tmp_path / "animated.gif"
    frames = [Image.new("RGB", (4, 4), RED), Image.new("RGB", (4, 4), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=10)
    assert _pixel(load_image(path)) == RED

    with Image.open(path) as animated:
        animated.seek(1)
        assert _pixel(to_rgb(animated)) == RED
        assert animated.tell() == 1


def _exif_rotated_jpeg(path, size=(32, 16), orientation=6):
    """JPEG stored `size` wide with a black left half and a white right half."""
    width, height = size
    pixels = np.full((height, width, 3), 255, dtype=np.uint8)
    pixels[:, : width // 2] = 0
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path):
    path = _exif_rotated_jpeg(tmp_path / "rotated.jpg")
    image = load_image(path)
    # Orientation 6: rotate 90 degrees clockwise to display, so the stored
    # 32x16 image is 16x32 upright and its left (black) half is now on top.
    _assert_rgb(image, (16, 32))
    assert max(_pixel(image, (8, 3))) < 40
    assert min(_pixel(image, (8, 28))) > 215


def test_exif_orientation_of_in_memory_pil_image(tmp_path):
    path = _exif_rotated_jpeg(tmp_path / "rotated.jpg")
    with Image.open(path) as opened:
        assert opened.size == (32, 16)
        assert to_rgb(opened).size == (16, 32)


# ----------------------------------------------------------------- draft mode


@pytest.mark.parametrize(
    "draft_size, expected_size",
    [(None, (256, 256)), ((64, 64), (64, 64)), ((100, 100), (128, 128)), ((300, 300), (256, 256))],
)
def test_jpeg_draft_decodes_at_reduced_scale_but_never_below_request(tmp_path, draft_size, expected_size):
    path = _noise_jpeg(tmp_path / "big.jpg", size=(256, 256))
    image = load_image(path, draft_size=draft_size)
    _assert_rgb(image, expected_size)


def test_draft_size_refers_to_the_upright_image(tmp_path):
    # Stored 256x128 with orientation 6: upright it is 128x256.
    path = _exif_rotated_jpeg(tmp_path / "rotated.jpg", size=(256, 128))
    assert load_image(path, draft_size=(32, 64)).size == (32, 64)


def test_draft_size_is_ignored_for_png(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (256, 256)).save(path)
    assert load_image(path, draft_size=(32, 32)).size == (256, 256)


# ------------------------------------------------------------ file errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageLoadError, match=r"cannot read image .*nope\.jpg: file not found") as info:
        load_image(path)
    assert info.value.source == str(path)
    assert info.value.reason == "file not found"


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)


def test_non_image_file_with_jpg_extension(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg: not an image file"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    path = _noise_jpeg(tmp_path / "cut.jpg")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg: file is truncated"):
        load_image(path)
    # The policy is local: PIL's global switch is left alone.
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_jpeg_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(buffer, "JPEG")
    with pytest.raises(ImageLoadError, match=r"<\d+ bytes>: file is truncated"):
        load_image(buffer.getvalue()[:300])


@pytest.mark.parametrize("side", [12, 20], ids=["warning-range", "error-range"])
def test_decompression_bomb(tmp_path, monkeypatch, side):
    # 144 pixels is between MAX_IMAGE_PIXELS and twice it (PIL only warns);
    # 400 is beyond twice it (PIL raises). Both are errors here.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "bomb.png"
    Image.new("RGB", (side, side)).save(path)
    filters_before = list(warnings.filters)
    with pytest.raises(ImageLoadError, match=r"bomb\.png: decompression bomb"):
        load_image(path)
    assert warnings.filters == filters_before


def test_file_is_closed_after_loading_and_pixels_stay_usable(tmp_path):
    path = tmp_path / "small.jpg"
    Image.new("RGB", (4, 4), RED).save(path, quality=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        image = load_image(path)
        path.unlink()  # fails on systems that lock open files
    assert not path.exists()
    assert all(abs(a - b) <= 2 for a, b in zip(_pixel(image), RED, strict=True))
    assert np.asarray(image).shape == (4, 4, 3)


# ------------------------------------------------------------ load_image kinds


def test_load_image_from_str_path_bytes_and_pil(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGBA", (3, 2), RED + (255,)).save(path)
    for item in (path, str(path), path.read_bytes(), bytearray(path.read_bytes())):
        image = load_image(item)
        _assert_rgb(image, (3, 2))
        assert _pixel(image) == RED
    pil_image = Image.new("L", (3, 2), 7)
    assert _pixel(load_image(pil_image)) == (7, 7, 7)


def test_load_image_from_array_and_tensor():
    array = np.zeros((2, 3, 3), dtype=np.uint8)
    array[..., 0] = 255
    assert load_image(array).size == (3, 2)
    assert _pixel(load_image(torch.from_numpy(array).permute(2, 0, 1))) == RED


def test_load_image_rejects_other_types():
    with pytest.raises(TypeError, match="got int"):
        load_image(42)


def test_load_image_uses_given_source():
    with pytest.raises(ImageLoadError, match=r"^cannot read image X\[7\] \(array 2x2x2\): "):
        load_image(np.zeros((2, 2, 2)), source="X[7] (array 2x2x2)")


# ------------------------------------------------------------ array_to_image


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.full((2, 2, 3), 10, dtype=np.uint8), (10, 10, 10)),
        (np.full((2, 2), 10, dtype=np.uint8), (10, 10, 10)),
        (np.full((2, 2, 1), 10, dtype=np.uint8), (10, 10, 10)),
        (np.full((2, 2, 3), 257 * 10, dtype=np.uint16), (10, 10, 10)),
        (np.ones((2, 2), dtype=bool), WHITE),
        (np.full((2, 2, 3), 0.5, dtype=np.float32), (128, 128, 128)),
        (np.full((2, 2, 3), 1.0, dtype=np.float64), WHITE),
        (np.full((2, 2, 3), 200, dtype=np.int64), (200, 200, 200)),
        (np.full((2, 2, 4), [255, 0, 0, 0], dtype=np.uint8), WHITE),
        (np.full((2, 2, 4), [255, 0, 0, 255], dtype=np.uint8), RED),
    ],
    ids=[
        "uint8",
        "HW",
        "HW1",
        "uint16",
        "bool",
        "float-half",
        "float-one",
        "int64",
        "rgba-clear",
        "rgba-opaque",
    ],
)
def test_array_dtype_and_channel_rules(array, expected):
    image = array_to_image(array)
    _assert_rgb(image, (2, 2))
    assert _pixel(image) == expected


def test_float_array_round_trips_uint8_exactly():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = array_to_image(values.astype(np.float32) / 255)
    np.testing.assert_array_equal(np.asarray(image)[..., 0], values)


def test_float_array_outside_unit_range_names_range():
    with pytest.raises(ImageLoadError, match=r"must lie in \[0, 1\] \(found min 0, max 255\)"):
        array_to_image(np.linspace(0, 255, 12).reshape(2, 2, 3), "X[0] (array 2x2x3)")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_array(bad_value):
    array = np.zeros((2, 2, 3), dtype=np.float32)
    array[0, 0, 0] = bad_value
    with pytest.raises(ImageLoadError, match="NaN or infinity"):
        array_to_image(array)


def test_integer_array_outside_8_bit_range():
    with pytest.raises(ImageLoadError, match=r"int64 must lie in \[0, 255\].*max 300"):
        array_to_image(np.full((2, 2), 300, dtype=np.int64))


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 2, 5), (2,), (1, 2, 2, 3)], ids=["2ch", "5ch", "1d", "4d"])
def test_array_wrong_shape_names_shape(shape):
    shape_text = str(shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ImageLoadError, match=f"HWC array.*got shape {shape_text}"):
        array_to_image(np.zeros(shape, dtype=np.uint8))


def test_empty_array():
    with pytest.raises(ImageLoadError, match=r"image is empty \(shape \(0, 4, 3\)\)"):
        array_to_image(np.zeros((0, 4, 3), dtype=np.uint8))


def test_unsupported_dtype():
    with pytest.raises(ImageLoadError, match="unsupported pixel dtype complex128"):
        array_to_image(np.zeros((2, 2), dtype=complex))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.bfloat16])
def test_tensor_chw(dtype):
    tensor = torch.zeros((3, 2, 5), dtype=dtype)
    tensor[0] = 255 if dtype == torch.uint8 else 1.0
    image = array_to_image(tensor)
    _assert_rgb(image, (5, 2))
    assert _pixel(image) == RED


def test_tensor_grey_and_requires_grad():
    tensor = torch.full((1, 2, 2), 0.5, requires_grad=True)
    assert _pixel(array_to_image(tensor)) == (128, 128, 128)
    assert _pixel(array_to_image(torch.full((2, 2), 0.5))) == (128, 128, 128)


def test_tensor_channels_last_is_rejected_with_shape():
    with pytest.raises(ImageLoadError, match=r"CHW tensor.*got shape \(8, 8, 3\)"):
        array_to_image(torch.zeros((8, 8, 3)))


# ------------------------------------------------------------ ImageLoadError


def test_image_load_error_is_value_error_and_pickles():
    error = ImageLoadError("a/b.jpg", "file not found")
    assert isinstance(error, ValueError)
    assert str(error) == "cannot read image a/b.jpg: file not found"
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.source, restored.reason, str(restored)) == (
        error.source,
        error.reason,
        str(error),
    )


# ------------------------------------------------------------ describe_source


@pytest.mark.parametrize(
    "item, index, expected",
    [
        ("dir/cat.jpg", 3, "dir/cat.jpg"),
        (Path("dir/cat.jpg"), None, "dir/cat.jpg"),
        (Image.new("RGB", (2, 2)), 3, "X[3] (PIL image)"),
        (np.zeros((32, 32, 3)), 3, "X[3] (array 32x32x3)"),
        (torch.zeros(3, 8, 8), 0, "X[0] (tensor 3x8x8)"),
        (b"abc", 1, "X[1] (3 bytes)"),
        (Image.new("RGB", (2, 2)), None, "<PIL image>"),
    ],
)
def test_describe_source(item, index, expected):
    assert describe_source(item, index) == expected


def test_describe_source_input_name():
    assert describe_source(b"ab", 2, input_name="images") == "images[2] (2 bytes)"


# ------------------------------------------------------------ check_images


def test_check_images_list_and_tuple_keep_items():
    items = ["a.jpg", Path("b.png"), b"raw", Image.new("RGB", (2, 2)), np.zeros((2, 2))]
    assert check_images(items) == items
    assert check_images(tuple(items)) == items


@pytest.mark.parametrize(
    "container",
    [
        np.array(["a.jpg", "b.jpg"]),
        np.array(["a.jpg", "b.jpg"], dtype=object),
        np.array([["a.jpg"], ["b.jpg"]], dtype=object),
        pd.Series(["a.jpg", "b.jpg"], index=[10, 20]),
        pd.DataFrame({"path": ["a.jpg", "b.jpg"]}),
    ],
    ids=["str-array", "object-array", "object-column", "series", "dataframe"],
)
def test_check_images_paths_in_containers(container):
    assert check_images(container) == ["a.jpg", "b.jpg"]


def test_check_images_dataframe_with_several_columns():
    frame = pd.DataFrame({"path": ["a.jpg"], "label": ["cat"]})
    with pytest.raises(ValueError, match=r"2 columns \['path', 'label'\]; pass one column"):
        check_images(frame)


def test_check_images_channels_last_batch():
    batch = np.zeros((2, 8, 6, 3), dtype=np.uint8)
    items = check_images(batch)
    assert len(items) == 2 and items[0].shape == (8, 6, 3)


def test_check_images_channels_first_batch():
    batch = np.zeros((2, 3, 8, 6), dtype=np.uint8)
    batch[:, 0] = 255
    items = check_images(batch)
    assert [item.shape for item in items] == [(8, 6, 3), (8, 6, 3)]
    assert _pixel(load_image(items[0])) == RED


@pytest.mark.parametrize(
    "shape, item_shape",
    [
        ((2, 3, 4, 4), (4, 4, 3)),
        ((2, 4, 4, 3), (4, 4, 3)),
        ((2, 3, 3, 3), (3, 3, 3)),
        ((2, 1, 28, 28), (28, 28, 1)),
        ((2, 28, 28, 1), (28, 28, 1)),
    ],
)
def test_check_images_batch_layout_rule(shape, item_shape):
    items = check_images(np.zeros(shape, dtype=np.uint8))
    assert items[0].shape == item_shape


def test_check_images_ambiguous_batch_prefers_smaller_channel_axis():
    batch = np.zeros((1, 3, 4, 4), dtype=np.uint8)
    batch[0, 1] = 255  # channel 1 (green) in channels-first reading
    assert _pixel(load_image(check_images(batch)[0])) == (0, 255, 0)


def test_check_images_4d_with_no_channel_axis():
    with pytest.raises(ValueError, match=r"4-D array of shape \(2, 5, 6, 7\)"):
        check_images(np.zeros((2, 5, 6, 7)))


def test_check_images_3d_numeric_is_greyscale_batch():
    items = check_images(np.zeros((4, 8, 6), dtype=np.uint8))
    assert len(items) == 4 and items[0].shape == (8, 6)


def test_check_images_2d_numeric_array():
    with pytest.raises(ValueError, match=r"2-D numeric array of shape \(8, 6\).*wrap it in a list"):
        check_images(np.zeros((8, 6)))


def test_check_images_2d_object_array_with_several_columns():
    with pytest.raises(ValueError, match=r"2-D array of object of shape \(1, 2\)"):
        check_images(np.array([["a.jpg", "b.jpg"]], dtype=object))


def test_check_images_1d_numeric_array():
    with pytest.raises(ValueError, match=r"1-D numeric array"):
        check_images(np.zeros(5))


def test_check_images_tensor_batches():
    items = check_images(torch.zeros((2, 3, 8, 6)))
    assert len(items) == 2 and tuple(items[0].shape) == (3, 8, 6)
    grey = check_images(torch.zeros((2, 8, 6)))
    assert tuple(grey[1].shape) == (8, 6)
    with pytest.raises(ValueError, match=r"4-D tensor of shape \(2, 8, 6, 3\)"):
        check_images(torch.zeros((2, 8, 6, 3)))
    with pytest.raises(ValueError, match=r"2-D tensor of shape \(8, 6\)"):
        check_images(torch.zeros((8, 6)))


@pytest.mark.parametrize(
    "empty",
    [[], (), np.array([], dtype=object), pd.Series([], dtype=object), np.zeros((0, 8, 8, 3))],
)
def test_check_images_empty(empty):
    with pytest.raises(ValueError, match="X is empty"):
        check_images(empty)


@pytest.mark.parametrize("missing", [None, float("nan"), np.float64("nan"), pd.NA, pd.NaT])
def test_check_images_keeps_missing_items_as_none(missing):
    # Rows stay aligned: the estimator decides (NaN row or a clear error).
    assert check_images(["a.jpg", missing, "b.jpg"]) == ["a.jpg", None, "b.jpg"]


def test_check_images_missing_items_in_series_and_one_column_frame():
    assert check_images(pd.Series(["a.jpg", None, np.nan])) == ["a.jpg", None, None]
    frame = pd.DataFrame({"photo": pd.array(["a.jpg", pd.NA], dtype="string")})
    assert check_images(frame) == ["a.jpg", None]


def test_load_image_of_a_missing_value_names_it():
    with pytest.raises(ImageLoadError, match=r"X\[4\] \(missing\): missing value"):
        load_image(None, source=describe_source(None, 4))


def test_check_images_empty_path():
    with pytest.raises(ValueError, match=r"X\[0\] is an empty path"):
        check_images([""])


@pytest.mark.parametrize("single", ["a.jpg", Path("a.jpg")])
def test_check_images_single_path_asks_for_a_list(single):
    with pytest.raises(ValueError, match=r"single path \('a.jpg'\).*wrap it in a list: X=\[image\]"):
        check_images(single)


def test_check_images_single_bytes_asks_for_a_list():
    with pytest.raises(ValueError, match=r"single encoded image \(2 bytes\).*wrap it in a list"):
        check_images(b"\xff\xd8")


def test_check_images_single_pil_image_asks_for_a_list():
    with pytest.raises(ValueError, match=r"single PIL image.*wrap it in a list"):
        check_images(Image.new("RGB", (2, 2)))


@pytest.mark.parametrize(
    "container, type_name",
    [({"a": 1}, "dict"), (42, "int"), ((p for p in ["a.jpg"]), "generator"), (None, "NoneType")],
)
def test_check_images_unsupported_container(container, type_name):
    with pytest.raises(TypeError, match=f"X has type {type_name}"):
        check_images(container)


def test_check_images_unsupported_item():
    with pytest.raises(TypeError, match=r"X\[1\] has type int"):
        check_images(["a.jpg", 3])


def test_check_images_uses_input_name():
    with pytest.raises(ValueError, match=r"images\[0\] is an empty path"):
        check_images([""], input_name="images")
    with pytest.raises(ValueError, match="images is empty"):
        check_images([], input_name="images")


def test_check_images_does_not_touch_files(tmp_path):
    missing = str(tmp_path / "does_not_exist.jpg")
    assert check_images([missing]) == [missing]


# ------------------------------------------------------------- numeric tables


@pytest.mark.parametrize(
    "n_features, shape",
    [(1, (1, 1)), (3, (1, 1, 3)), (4, (2, 2)), (12, (2, 2, 3)), (64, (8, 8)), (192, (8, 8, 3)), (144, (12, 12))],
)
def test_infer_image_shape_square_grey_before_square_rgb(n_features, shape):
    assert infer_image_shape(n_features) == shape


@pytest.mark.parametrize("n_features", [2, 5, 6, 10, 30, 128, 512, 1280])
def test_infer_image_shape_refuses_ambiguous_widths(n_features):
    # 1280 is EfficientNet-Lite0's embedding width: the classic mistake.
    with pytest.raises(ValueError, match=rf"X_new is a numeric table with {n_features} columns") as info:
        infer_image_shape(n_features, input_name="X_new")
    assert "image_shape=(height, width)" in str(info.value)
    assert "belong in a classifier" in str(info.value)


def test_rows_to_images_explicit_shape_and_layout():
    X = np.arange(2 * 24).reshape(2, 24)
    images = rows_to_images(X, (2, 4, 3))
    assert [image.shape for image in images] == [(2, 4, 3)] * 2
    np.testing.assert_array_equal(images[1], X[1].reshape(2, 4, 3))
    # An explicit image_shape makes any width usable, e.g. a 1x30 strip.
    assert rows_to_images(np.zeros((1, 30)), (1, 30))[0].shape == (1, 30)


def test_rows_to_images_rescales_only_the_float_rows_outside_unit_range():
    X = np.array([[0.0, 0.25, 0.5, 1.0], [-1.0, 0.0, 1.0, 3.0]])
    inside, outside = rows_to_images(X, "auto")
    np.testing.assert_array_equal(inside.ravel(), X[0])
    np.testing.assert_allclose(outside.ravel(), [0.0, 0.25, 0.5, 1.0])
    assert inside.dtype == np.float32


def test_rows_to_images_constant_row_outside_range_does_not_divide_by_zero():
    (image,) = rows_to_images(np.full((1, 4), 7.0), "auto")
    np.testing.assert_array_equal(image, np.zeros((2, 2)))


def test_rows_to_images_names_rows_with_nan():
    X = np.zeros((4, 4))
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"X has NaN or infinite values in rows \[2\]"):
        rows_to_images(X, "auto")


def test_multi_frame_tiff_with_rgb_first_frame_loads_after_the_file_is_closed(tmp_path):
    path = tmp_path / "pages.tif"
    Image.new("RGB", (5, 4), RED).save(path, save_all=True, append_images=[Image.new("L", (2, 2), 9)])
    image = load_image(path)
    _assert_rgb(image, (5, 4))
    assert _pixel(image) == RED
    np.testing.assert_array_equal(np.asarray(image)[..., 0], 255)

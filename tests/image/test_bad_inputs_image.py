"""Catalogue of bad image inputs: one row per fault, one parametrized test.

Each row is ``(id, make, expected)``: ``make(ctx)`` produces the fault and
calls the library (``ctx`` has ``tmp_path`` and ``monkeypatch``);
``expected`` is either ``(exception type, message fragment)`` or a policy:
a callable that asserts on what ``make`` returned. The next bad input is
one more row.
"""

import io
import os
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from _catalogue import check_row, returns_within
from PIL import Image
from sklearn.base import BaseEstimator

from sktransfer.image import ImageLoadError, check_images, load_image
from sktransfer.image._batch_decoder import decode_all
from sktransfer.image._decode import load_pixels
from sktransfer.image._transforms import pil_to_chw
from sktransfer.image._validation import ImageInputMixin

# ------------------------------------------------------------------ helpers

# 16x12 image whose channels differ (a swapped or dropped channel shows):
# red grows left to right, green top to bottom, blue right to left. 192
# distinct colours, so even GIF's 256-colour palette stores it exactly.
_X, _Y = np.meshgrid(np.arange(16), np.arange(12))
PATTERN = np.stack([_X * 16, _Y * 20, 255 - _X * 16], axis=-1).astype(np.uint8)


def _pattern_image(mode="RGB"):
    return Image.fromarray(PATTERN).convert(mode)


def _write(ctx, name, data):
    path = ctx.tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return str(path)


def _jpeg_bytes(size=(64, 64), **kwargs):
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def _saved(image, format, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


def _multi_frame(format, **kwargs):
    """First frame 6x5 RGB (10, 20, 30); later frames of other sizes and modes."""
    first = Image.new("RGB", (6, 5), (10, 20, 30))
    later = [Image.new("L", (3, 3), 200), Image.new("RGBA", (9, 7), (0, 0, 255, 128))]
    return _saved(first, format, save_all=True, append_images=later, **kwargs)


class _TableOrImages(ImageInputMixin, BaseEstimator):
    """The smallest image estimator: validates its input, nothing else."""

    def __init__(self, image_shape="auto"):
        self.image_shape = image_shape

    def fit(self, X, y=None):
        self.items_ = self._validate_images(X, reset=True)
        return self

    def transform(self, X):
        return self._validate_images(X, reset=False)


def _fitted_on_table(columns=16):
    return _TableOrImages().fit(np.random.default_rng(0).random((3, columns)))


# ------------------------------------------------------------------ policies


def _rgb_of(size, first_pixel=None, atol=0):
    """Policy: an RGB image of ``size`` (width, height), optionally its (0, 0) pixel."""

    def check(image):
        assert image.mode == "RGB" and image.size == size, (image.mode, image.size)
        if first_pixel is not None:
            np.testing.assert_allclose(image.getpixel((0, 0)), first_pixel, atol=atol)

    return check


def _pattern_within(mean_abs_error):
    """Policy: RGB, 16x12, equal to PATTERN up to a mean absolute error."""

    def check(image):
        assert image.mode == "RGB" and image.size == (16, 12)
        error = np.abs(np.asarray(image, dtype=float) - PATTERN).mean()
        assert error <= mean_abs_error, f"mean abs error {error:.2f}"

    return check


def _one_bit_pattern(image):
    expected = np.asarray(_pattern_image("1").convert("RGB"))
    assert image.size == (16, 12)
    np.testing.assert_array_equal(np.asarray(image), expected)


def _black_row_and_failure(fragment):
    """Policy for on_error="nan": the bad item is black and reported, the rest kept."""

    def check(result):
        batch, failures = result
        assert [index for index, _ in failures] == [1]
        assert fragment in str(failures[0][1])
        assert batch[1].sum().item() == 0 and batch[0].sum().item() > 0

    return check


# ------------------------------------------------------------------ files


def _missing(ctx):
    return load_image(ctx.tmp_path / "missing.jpg")


def _bomb(ctx):
    ctx.monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    return load_image(_write(ctx, "bomb.png", _saved(Image.new("RGB", (20, 20)), "PNG")))


def _exif_rotated(ctx):
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees: 32x16 stored, 16x32 upright
    return load_image(_jpeg_bytes((32, 16), exif=exif.tobytes()))


def _with_decode_jpeg(load):
    """Run ``load(ctx)`` where load_pixels decodes JPEGs with decode_jpeg (torchvision imported)."""

    def fault(ctx):
        pytest.importorskip("torchvision.io")
        return load(ctx)

    return fault


def _upright_tensor_equal_to_pil(result):
    """Policy: decode_jpeg's upright uint8 CHW tensor, PIL's pixels exactly."""
    pixels, reference = result
    assert isinstance(pixels, torch.Tensor) and pixels.dtype == torch.uint8, type(pixels)
    torch.testing.assert_close(pixels, pil_to_chw(reference), rtol=0, atol=0)


def _exif_rotated_both_ways(ctx):
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _jpeg_bytes((32, 16), exif=exif.tobytes())
    return load_pixels(data), load_image(data)


def _palette_with_transparency(ctx):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    return load_image(_saved(image, "PNG", transparency=0))


def _sixteen_bit_png(ctx):
    raw = np.full((3, 5), 257 * 40, dtype=np.uint16)
    return load_image(_saved(Image.fromarray(raw), "PNG"))


def _plugin_raises_anything(ctx):
    # PIL plugins raise what they like (AssertionError, struct.error...):
    # the error must still name the file.
    def broken(image, *, source):
        raise AssertionError

    ctx.monkeypatch.setattr("sktransfer.image._decode.to_rgb", broken)
    return load_image(_write(ctx, "odd.png", _saved(_pattern_image(), "PNG")))


def _closed_pil_image(ctx):
    image = Image.open(io.BytesIO(_multi_frame("TIFF")))
    image.fp.close()
    return load_image(image, source="X[0] (PIL image)")


def _eps(ctx):
    if shutil.which("gs") is None:
        with pytest.raises(ImageLoadError, match="<.* bytes>: .*Ghostscript"):
            load_image(_saved(_pattern_image(), "EPS"))
        return _pattern_image()
    return load_image(_saved(_pattern_image(), "EPS"))


def _animated_webp(ctx):
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    return load_image(_saved(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))


FILE_ROWS = [
    ("missing-file", _missing, (ImageLoadError, "missing.jpg: file not found")),
    ("directory", lambda ctx: load_image(ctx.tmp_path), (ImageLoadError, "is a directory")),
    (
        "empty-file",
        lambda ctx: load_image(_write(ctx, "empty.png", b"")),
        (ImageLoadError, "empty.png: not an image file"),
    ),
    (
        "html-saved-as-jpg",
        lambda ctx: load_image(_write(ctx, "page.jpg", "<html><body>404</body></html>")),
        (ImageLoadError, "page.jpg: not an image file"),
    ),
    (
        "svg",
        lambda ctx: load_image(_write(ctx, "logo.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')),
        (ImageLoadError, "logo.svg: not an image file"),
    ),
    (
        "truncated-jpeg",
        lambda ctx: load_image(_write(ctx, "cut.jpg", _jpeg_bytes()[:400])),
        (ImageLoadError, "cut.jpg: file is truncated"),
    ),
    (
        "truncated-jpeg-on-the-decode_jpeg-path",
        _with_decode_jpeg(lambda ctx: load_pixels(_write(ctx, "cut.jpg", _jpeg_bytes()[:400]))),
        (ImageLoadError, "cut.jpg: file is truncated"),
    ),
    (
        "exif-rotated-jpeg-on-the-decode_jpeg-path",
        _with_decode_jpeg(_exif_rotated_both_ways),
        _upright_tensor_equal_to_pil,
    ),
    (
        "cmyk-jpeg-on-the-decode_jpeg-path-stays-with-pil",
        _with_decode_jpeg(lambda ctx: load_pixels(_saved(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", quality=95))),
        _rgb_of((8, 8), (255, 255, 255), atol=5),
    ),
    ("decompression-bomb", _bomb, (ImageLoadError, "bomb.png: decompression bomb")),
    (
        "multi-frame-tiff",
        lambda ctx: load_image(_write(ctx, "stack.tif", _multi_frame("TIFF"))),
        _rgb_of((6, 5), (10, 20, 30)),
    ),
    (
        "multi-frame-tiff-with-draft-size",
        lambda ctx: load_image(_write(ctx, "stack.tif", _multi_frame("TIFF")), draft_size=(2, 2)),
        _rgb_of((6, 5), (10, 20, 30)),
    ),
    (
        "multi-frame-tiff-with-exif",
        lambda ctx: load_image(_multi_frame("TIFF", exif=Image.Exif())),
        _rgb_of((6, 5), (10, 20, 30)),
    ),
    ("multi-frame-gif", lambda ctx: load_image(_multi_frame("GIF")), _rgb_of((6, 5), (10, 20, 30), atol=8)),
    ("animated-webp", _animated_webp, _rgb_of((4, 4), (255, 0, 0))),
    (
        "cmyk-jpeg",
        lambda ctx: load_image(_saved(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", quality=95)),
        _rgb_of((8, 8), (255, 255, 255), atol=5),
    ),
    ("16-bit-png", _sixteen_bit_png, _rgb_of((5, 3), (40, 40, 40))),
    ("palette-with-transparency", _palette_with_transparency, _rgb_of((4, 4), (255, 255, 255))),
    ("exif-rotated-jpeg", _exif_rotated, _rgb_of((16, 32))),
    ("plugin-raises-assertion-error", _plugin_raises_anything, (ImageLoadError, "odd.png: unexpected AssertionError")),
    ("pil-image-whose-file-was-closed", _closed_pil_image, (ImageLoadError, "X[0] (PIL image)")),
    (
        "spider-float-pixels-beyond-unit-range",
        lambda ctx: load_image(_saved(_pattern_image("F"), "SPIDER")),
        (ImageLoadError, "float pixel values must lie in [0, 1]"),
    ),
    ("eps-needs-ghostscript", _eps, _rgb_of((16, 12))),
    (
        "icns-holds-several-sizes-the-largest-is-read",
        lambda ctx: load_image(_saved(_pattern_image(), "ICNS")),
        _rgb_of((1024, 1024)),
    ),
]

# ------------------------------------------------------- every PIL writer

# Format -> policy for what it gives back. Lossless formats return the
# pattern exactly; lossy ones within a small error; 1-bit ones its 1-bit form.
_LOSSLESS = ["BMP", "DDS", "DIB", "GIF", "IM", "JPEG2000", "PCX", "PNG", "PPM", "QOI", "SGI", "TGA", "TIFF", "ICO"]
_LOSSY = {"JPEG": 12, "WEBP": 12, "AVIF": 12}
_ONE_BIT = ["MSP", "XBM"]


def _round_trip(format, mode="RGB"):
    return lambda ctx: load_image(_write(ctx, f"pattern.{format.lower()}", _saved(_pattern_image(mode), format)))


PLUGIN_ROWS = (
    [(f"plugin-{f}", _round_trip(f), _pattern_within(0)) for f in _LOSSLESS]
    + [(f"plugin-{f}", _round_trip(f), _pattern_within(err)) for f, err in _LOSSY.items()]
    + [(f"plugin-{f}", _round_trip(f, "1"), _one_bit_pattern) for f in _ONE_BIT]
)

# ------------------------------------------------------------------ arrays

ARRAY_ROWS = [
    (
        "array-nan",
        lambda ctx: load_image(np.full((2, 2, 3), np.nan, dtype=np.float32)),
        (ImageLoadError, "NaN or infinity"),
    ),
    (
        "array-two-channels",
        lambda ctx: load_image(np.zeros((4, 4, 2), np.uint8)),
        (ImageLoadError, "with 1, 3 or 4 channels, or an HW array, got shape (4, 4, 2)"),
    ),
    (
        "array-float-out-of-range",
        lambda ctx: load_image(np.full((2, 2), 255.0)),
        (ImageLoadError, "float pixel values must lie in [0, 1] (found min 255, max 255)"),
    ),
    (
        "array-int-out-of-range",
        lambda ctx: load_image(np.full((2, 2), 300, dtype=np.int32)),
        (ImageLoadError, "must lie in [0, 255]"),
    ),
    ("array-empty", lambda ctx: load_image(np.zeros((0, 4, 3), np.uint8)), (ImageLoadError, "image is empty")),
    (
        "array-complex",
        lambda ctx: load_image(np.zeros((2, 2), np.complex64)),
        (ImageLoadError, "unsupported pixel dtype complex64"),
    ),
    ("tensor-channels-last", lambda ctx: load_image(torch.zeros(5, 5, 3)), (ImageLoadError, "a CHW tensor")),
    (
        "array-uint16-is-divided-by-257",
        lambda ctx: load_image(np.full((2, 2), 257 * 9, np.uint16)),
        _rgb_of((2, 2), (9, 9, 9)),
    ),
]

# -------------------------------------------------------------- containers


def _url_without_fsspec(ctx):
    import importlib.util

    real = importlib.util.find_spec
    ctx.monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fsspec" else real(name, *a))
    return check_images(["gs://bucket/cat.jpg"])


def _missing_entry_of_a_filtered_frame(ctx):
    # Found with issue 22's dask finding: a frame keeping labels that are not
    # its positions (a filtered frame, a dask partition) had its missing
    # item named by position, which is another row of the whole collection.
    from sktransfer import PretrainedFeatureExtractor

    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch")
    photos = pd.Series([PATTERN, None, PATTERN], index=[10, 11, 12], name="photo")
    return est.fit([PATTERN]).transform(photos)


def _extractor_missing_entry(on_error):
    def make(ctx):
        from sktransfer import PretrainedFeatureExtractor

        est = PretrainedFeatureExtractor(
            model="tiny_convnet", weights=None, num_workers=0, on_error=on_error, engine="torch"
        ).fit([PATTERN])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = est.transform(pd.DataFrame({"photo": [PATTERN, None, np.nan, pd.NA]}))
        return out, [str(w.message) for w in caught]

    return make


def _nan_rows_for_missing(result):
    out, messages = result
    assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()
    assert sum(m.startswith("3 of 4 images could not be read") for m in messages) == 1


CONTAINER_ROWS = [
    ("single-path", lambda ctx: check_images("cat.jpg"), (ValueError, "wrap it in a list: X=[image]")),
    ("nested-lists", lambda ctx: check_images([["a.jpg", "b.jpg"]]), (TypeError, "X[0] has type list")),
    (
        "dataframe-two-columns",
        lambda ctx: check_images(pd.DataFrame({"a": ["x.jpg"], "b": ["y.jpg"]})),
        (ValueError, "DataFrame with 2 columns ['a', 'b']"),
    ),
    (
        "none-entry-kept-in-place",
        lambda ctx: check_images(["a.jpg", None]),
        lambda items: items == ["a.jpg", None] or pytest.fail(str(items)),
    ),
    (
        "pandas-na-and-nat-entries-become-none",
        lambda ctx: check_images(pd.Series(["a.jpg", pd.NA, pd.NaT], dtype=object)),
        lambda items: items == ["a.jpg", None, None] or pytest.fail(str(items)),
    ),
    ("load-image-of-none", lambda ctx: load_image(None), (ImageLoadError, "<missing>: missing value")),
    ("url-without-fsspec", _url_without_fsspec, (ImportError, "pip install 'sktransfer[remote]'")),
    ("extractor-raise-on-missing-entry", _extractor_missing_entry("raise"), (ValueError, "X[1] is missing")),
    (
        "extractor-raise-on-missing-entry-by-label",
        _missing_entry_of_a_filtered_frame,
        (ValueError, "X at index 11 is missing"),
    ),
    ("extractor-nan-on-missing-entries", _extractor_missing_entry("nan"), _nan_rows_for_missing),
    (
        "paths-mixed-with-numbers",
        lambda ctx: check_images(np.array(["a.jpg", 3], dtype=object)),
        (TypeError, "X[1] has type int (value 3) (X mixes images with int values)"),
    ),
    (
        "object-table-of-paths-and-numbers",
        lambda ctx: _TableOrImages().fit(np.array([["a.jpg", 1], ["b.jpg", 2]], dtype=object)),
        (ValueError, "2-D array of object of shape (2, 2); expected a 1-D array (or a single column)"),
    ),
    ("empty-list", lambda ctx: check_images([]), (ValueError, "X is empty")),
    ("empty-path", lambda ctx: check_images([""]), (ValueError, "X[0] is an empty path")),
    (
        "table-of-embeddings",
        lambda ctx: _TableOrImages().fit(np.zeros((4, 10))),
        (ValueError, "belong in a classifier"),
    ),
    (
        "table-width-needs-image-shape",
        lambda ctx: _TableOrImages().fit(np.zeros((4, 30))),
        (ValueError, "pass image_shape=(height, width)"),
    ),
    (
        "image-shape-mismatch",
        lambda ctx: _TableOrImages(image_shape=(7, 7)).fit(np.zeros((2, 64))),
        (ValueError, "64 columns, which cannot be reshaped to image_shape=(7, 7)"),
    ),
    ("table-with-nan", lambda ctx: _TableOrImages().fit(np.full((2, 4), np.nan)), (ValueError, "Input X contains NaN")),
    (
        "fitted-on-table-given-paths",
        lambda ctx: _fitted_on_table().transform(["a.jpg"]),
        (
            ValueError,
            "fitted on a numeric table of flattened images with 16 columns, and X is a list of 1 item (str, ...)",
        ),
    ),
    (
        "fitted-on-table-given-a-batch",
        lambda ctx: _fitted_on_table().transform(np.zeros((2, 4, 4, 3))),
        (ValueError, "X is a 4-D ndarray of shape (2, 4, 4, 3), not such a table"),
    ),
    (
        "fitted-on-table-given-one-row",
        lambda ctx: _fitted_on_table().transform(np.zeros(16)),
        (ValueError, "Reshape your data"),
    ),
    (
        "square-rgb-table-is-images",
        lambda ctx: _TableOrImages().fit(np.zeros((2, 27))).items_,
        lambda items: [item.shape for item in items] == [(3, 3, 3)] * 2 or pytest.fail(str(items)),
    ),
]

# ------------------------------------------------------- on_error="nan"


def _decode_nan(item):
    return lambda ctx: decode_all([PATTERN, item(ctx)], pil_to_chw, on_error="nan")


def _nan_with_broken_plugin(ctx):
    ctx.monkeypatch.setattr(
        "sktransfer.image._decode.to_rgb",
        lambda image, source: (_ for _ in ()).throw(TypeError("bad tile")),
    )
    return decode_all([PATTERN, _write(ctx, "odd.png", _saved(_pattern_image(), "PNG"))], pil_to_chw, on_error="nan")


def _extractor_nan_row(ctx):
    from sktransfer import PretrainedFeatureExtractor

    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, on_error="nan", engine="torch")
    missing = str(ctx.tmp_path / "gone.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = est.fit_transform([PATTERN, missing])
    return out, [str(w.message) for w in caught]


def _nan_row_and_one_warning(result):
    out, messages = result
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()
    assert sum("gone.png" in m for m in messages) == 1


NAN_ROWS = [
    (
        "nan-policy-missing-file",
        _decode_nan(lambda ctx: str(ctx.tmp_path / "gone.png")),
        _black_row_and_failure("gone.png: file not found"),
    ),
    (
        "nan-policy-html-file",
        _decode_nan(lambda ctx: _write(ctx, "page.png", "<html/>")),
        _black_row_and_failure("page.png: not an image file"),
    ),
    (
        "nan-policy-bad-array",
        _decode_nan(lambda ctx: np.full((2, 2), -1.0)),
        _black_row_and_failure("X[1] (array 2x2): float pixel values"),
    ),
    (
        "nan-policy-unexpected-plugin-error",
        _nan_with_broken_plugin,
        _black_row_and_failure("odd.png: unexpected TypeError: bad tile"),
    ),
    ("nan-policy-extractor-gives-nan-row-and-one-warning", _extractor_nan_row, _nan_row_and_one_warning),
]

# ----------------------------------------------- special files (no hangs)

_HANG_LIMIT_S = 20


def _returns_within(call):
    return returns_within(call, _HANG_LIMIT_S)


def _fifo(ctx, name="x.jpg"):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = ctx.tmp_path / name
    os.mkfifo(path)
    return str(path)


def _link_to_dev_zero(ctx, name="zero.jpg"):
    if not os.path.exists("/dev/zero") or sys.platform == "win32":
        pytest.skip("no /dev/zero on this platform")
    path = ctx.tmp_path / name
    path.symlink_to("/dev/zero")
    return str(path)


def _tiny_extractor(**params):
    from sktransfer import PretrainedFeatureExtractor

    return PretrainedFeatureExtractor(model="tiny_convnet", weights=None, engine="torch", num_workers=0, **params)


def _extractor_on(special):
    def make(ctx):
        path = special(ctx)
        est = _tiny_extractor().fit([PATTERN])
        return _returns_within(lambda: est.transform([PATTERN, path]))

    return make


def _nan_row_for_special_file(ctx):
    path = _fifo(ctx)
    est = _tiny_extractor(on_error="nan").fit([PATTERN])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _returns_within(lambda: est.transform([PATTERN, path]))
    return out, [str(w.message) for w in caught]


def _nan_row_naming_the_fifo(result):
    out, messages = result
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()
    assert [m for m in messages if "x.jpg" in m and "not a regular file (a FIFO)" in m], messages


# Found by the red team: a FIFO named x.jpg made load_image and transform
# wait forever for a writer, and a link to /dev/zero was read without end.
SPECIAL_FILE_ROWS = [
    (
        # Found by the red team: load_image waited forever for a writer.
        "fifo-named-like-an-image",
        lambda ctx: _returns_within(lambda: load_image(_fifo(ctx))),
        (ImageLoadError, "x.jpg: not a regular file (a FIFO)"),
    ),
    (
        # Found by the red team: load_pixels (transform's decoder) waited forever.
        "fifo-on-the-decode_jpeg-path",
        _with_decode_jpeg(lambda ctx: _returns_within(lambda: load_pixels(_fifo(ctx)))),
        (ImageLoadError, "x.jpg: not a regular file (a FIFO)"),
    ),
    (
        # Found while fixing the rows above: fsspec's local open waited forever too.
        "fifo-named-by-a-file-url",
        lambda ctx: _returns_within(lambda: load_image(Path(_fifo(ctx)).as_uri())),
        (ImageLoadError, "x.jpg: not a regular file (a FIFO)"),
    ),
    (
        # Found by the red team: a link to /dev/zero was a device read as an image file.
        "link-to-dev-zero",
        lambda ctx: _returns_within(lambda: load_image(_link_to_dev_zero(ctx))),
        (ImageLoadError, "zero.jpg: not a regular file (a character device)"),
    ),
    (
        # Found by the red team: transform hung on the FIFO.
        "fifo-given-to-transform-without-a-store",
        _extractor_on(_fifo),
        (ImageLoadError, "x.jpg: not a regular file (a FIFO)"),
    ),
    (
        # Found by the red team: transform read the device instead of refusing it.
        "link-to-dev-zero-given-to-transform-without-a-store",
        _extractor_on(_link_to_dev_zero),
        (ImageLoadError, "zero.jpg: not a regular file (a character device)"),
    ),
    # Found by the red team: on_error="nan" could not help, transform hung before any row.
    ("fifo-with-nan-policy-is-a-nan-row", _nan_row_for_special_file, _nan_row_naming_the_fifo),
]

ROWS = FILE_ROWS + PLUGIN_ROWS + ARRAY_ROWS + CONTAINER_ROWS + NAN_ROWS + SPECIAL_FILE_ROWS


def test_catalogue_is_large_and_ids_are_unique():
    ids = [row[0] for row in ROWS]
    assert len(ids) == len(set(ids))
    assert len(ROWS) >= 30


@pytest.mark.parametrize("make, expected", [pytest.param(m, e, id=i) for i, m, e in ROWS])
def test_bad_image_input(make, expected, tmp_path, monkeypatch):
    ctx = SimpleNamespace(tmp_path=tmp_path, monkeypatch=monkeypatch)
    check_row(make, expected, ctx)

"""Image input layer: decode one image of any kind and mode to RGB.

Everything that reads pixels goes through :func:`load_image`, so every input
kind (paths, bytes, PIL images, numpy arrays, torch tensors) and every PIL mode
ends up as an 8-bit RGB PIL image in one well-defined way, and every failure is
an :class:`ImageLoadError` that names the offending input.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .._typing import ImageItem
from ._errors import ImageLoadError
from ._jpeg import jpeg_as_tensor, stored_draft_size
from ._remote import is_url, open_image_file, read_url

if TYPE_CHECKING:
    import torch

__all__ = [
    "array_to_image",
    "describe_source",
    "load_image",
    "load_pixels",
    "to_rgb",
    "unexpected_error",
]

# Background that transparent pixels are composited onto. White matches what
# an image viewer shows and what most photo datasets assume.
_BACKGROUND_RGB = (255, 255, 255)

_EXIF_ORIENTATION_TAG = 0x0112

# warnings.catch_warnings() swaps the process-wide filter list; two threads
# entering and leaving it interleaved can leave the "error" filter installed
# for good. The lock serialises only Image.open (a header read), not decoding.
_WARNING_FILTER_LOCK = threading.Lock()

# Decoder failures PIL raises for corrupt data besides OSError.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError)


def _torch_tensor_type():
    """``torch.Tensor`` if torch is already imported, else None.

    An object cannot be a tensor unless torch was imported, so this avoids
    paying torch's import time just to validate a list of paths.
    """
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None)


def _is_tensor(obj):
    tensor_type = _torch_tensor_type()
    return tensor_type is not None and isinstance(obj, tensor_type)


def _is_pandas(obj, class_name):
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, getattr(pandas, class_name))


def _shape_text(shape):
    return "x".join(str(size) for size in shape)


def describe_source(item: Any, index: int | None = None, *, input_name: str = "X") -> str:
    """Short text naming one input in error messages.

    Parameters
    ----------
    item : object
        One input image: a path, bytes, PIL image, array or tensor.
    index : int or None, default=None
        Its position in the input collection, if known.
    input_name : str, default="X"
        Name of the input collection, used with `index`.

    Returns
    -------
    str
        The path itself for paths; otherwise e.g. ``"X[3] (PIL image)"`` or
        ``"X[3] (array 32x32x3)"``, or ``"<PIL image>"`` without an index.

    Examples
    --------
    >>> import numpy as np
    >>> describe_source(np.zeros((32, 32, 3), dtype=np.uint8), 3)
    'X[3] (array 32x32x3)'
    >>> describe_source("images/cat.jpg", 0)
    'images/cat.jpg'
    """
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if item is None:
        kind = "missing"
    elif isinstance(item, Image.Image):
        kind = "PIL image"
    elif isinstance(item, np.ndarray):
        kind = f"array {_shape_text(item.shape)}"
    elif _is_tensor(item):
        kind = f"tensor {_shape_text(tuple(item.shape))}"
    elif isinstance(item, (bytes, bytearray, memoryview)):
        kind = f"{len(item)} bytes"
    else:
        kind = type(item).__name__
    if index is None:
        return f"<{kind}>"
    return f"{input_name}[{index}] ({kind})"


def _composite_on_background(rgba_image):
    """RGBA PIL image -> RGB, blending transparent pixels onto white."""
    background = Image.new("RGBA", rgba_image.size, _BACKGROUND_RGB + (255,))
    return Image.alpha_composite(background, rgba_image).convert("RGB")


def _uint16_to_uint8(values):
    # 65535 / 257 == 255 exactly, so the full 16-bit range maps onto 0..255;
    # adding half the divisor rounds to nearest instead of truncating.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _unit_float_to_uint8(values):
    return np.rint(values.astype(np.float64) * 255.0).astype(np.uint8)


def _value_range_text(values):
    return f"min {values.min():g}, max {values.max():g}"


def _wide_grey_to_uint8(image, source):
    """8-bit grey array from PIL's 16/32-bit integer and float modes."""
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        return _uint16_to_uint8(values)
    if image.mode == "I":
        # Mode "I" is 32-bit signed, but PNG/TIFF readers (and Pillow < 10
        # for 16-bit PNGs) use it for 16-bit data: treat values that fit in
        # 16 bits as such, otherwise map the full int32 range linearly.
        if values.size == 0 or (values.min() >= 0 and values.max() <= 65535):
            return _uint16_to_uint8(values)
        shifted = values.astype(np.float64) - np.iinfo(np.int32).min
        return np.rint(shifted * (255.0 / (2.0**32 - 1))).astype(np.uint8)
    # Mode "F": same rule as float arrays.
    return _float_to_uint8(values, source)


def _float_to_uint8(values, source):
    if values.size and not np.isfinite(values).all():
        raise ImageLoadError(source, "pixel values contain NaN or infinity")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise ImageLoadError(
            source,
            "float pixel values must lie in [0, 1] "
            f"(found {_value_range_text(values)}); divide by 255 for 8-bit "
            "data, or pass a uint8/uint16 array",
        )
    return _unit_float_to_uint8(values)


def _mode_to_rgb(image, source):
    """Convert any PIL mode to RGB without touching orientation or frames."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
        return _composite_on_background(image.convert("RGBA"))
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        grey = _wide_grey_to_uint8(image, source)
        return Image.fromarray(grey, mode="L").convert("RGB")
    # Rare packed modes (BGR;15, ...): let PIL try, and say so if it cannot.
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageLoadError(source, f"unsupported image mode {mode!r} ({exc})") from None


def to_rgb(image: Image.Image, *, source: str = "<PIL image>") -> Image.Image:
    """Convert a PIL image of any mode to an upright 8-bit RGB image.

    The EXIF orientation is applied, animated images give their first frame,
    transparent pixels (``RGBA``, ``LA``, ``P`` with transparency) are
    composited onto white rather than dropped, and 16/32-bit images are scaled
    by the value range of their type (16-bit values divided by 257, not
    clipped). Mode ``F`` follows the float rule of :func:`array_to_image`.

    Parameters
    ----------
    image : PIL.Image.Image
        Image of any mode. It is not modified (its current frame is restored).
    source : str, default="<PIL image>"
        Name of the image used in error messages.

    Returns
    -------
    PIL.Image.Image
        Image in mode ``"RGB"``.

    Raises
    ------
    ImageLoadError
        If the mode cannot be converted, or float pixels are outside [0, 1].

    Examples
    --------
    >>> from PIL import Image
    >>> to_rgb(Image.new("RGBA", (4, 4), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    current_frame = image.tell() if getattr(image, "n_frames", 1) > 1 else 0
    if current_frame:
        image.seek(0)
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        # exif_transpose copies even upright images; skip it for those.
        upright = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
        rgb = _mode_to_rgb(upright, source)
        if rgb is image and current_frame:
            # Seeking back to the caller's frame below would change it.
            rgb = image.copy()
        return rgb
    finally:
        if current_frame:
            image.seek(current_frame)


def _array_channel_layout(shape, from_tensor, source):
    """Check the array shape; return True if channels come first (CHW)."""
    if from_tensor:
        expected = "a CHW tensor with 1, 3 or 4 channels, or an HW tensor"
        valid = len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3, 4))
    else:
        expected = "an HWC array with 1, 3 or 4 channels, or an HW array"
        valid = len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4))
    if not valid:
        raise ImageLoadError(source, f"expected {expected}, got shape {tuple(shape)}")
    if 0 in shape:
        raise ImageLoadError(source, f"image is empty (shape {tuple(shape)})")
    return from_tensor and len(shape) == 3


def _pixels_to_uint8(values, source):
    """Apply the dtype rules of :func:`array_to_image`."""
    kind = values.dtype.kind
    if values.dtype == np.uint8:
        return values
    if kind == "b":
        return values.astype(np.uint8) * np.uint8(255)
    if values.dtype == np.uint16:
        return _uint16_to_uint8(values)
    if kind == "f":
        return _float_to_uint8(values, source)
    if kind in "iu":
        # Other integer types (e.g. int64 from np.array([...])) are accepted
        # when they hold 8-bit values; anything wider is ambiguous.
        if values.min() < 0 or values.max() > 255:
            raise ImageLoadError(
                source,
                f"integer pixel values of dtype {values.dtype} must lie in "
                f"[0, 255] (found {_value_range_text(values)}); use uint16 "
                "for 16-bit data",
            )
        return values.astype(np.uint8)
    raise ImageLoadError(source, f"unsupported pixel dtype {values.dtype}")


def array_to_image(array: np.ndarray | torch.Tensor, source: str = "<array>") -> Image.Image:
    """Convert a numpy HWC/HW array or a torch CHW/HW tensor to an RGB image.

    Pixel types: ``uint8`` is used as is, ``uint16`` is divided by 257,
    ``bool`` is multiplied by 255, floats must lie in [0, 1] and are multiplied
    by 255 (rounded), other integer types must hold values in [0, 255].
    One channel is greyscale, three are RGB, four are RGBA (composited onto
    white).

    Parameters
    ----------
    array : numpy.ndarray or torch.Tensor
        Numpy arrays are channels-last (H, W, C) or (H, W); tensors are
        channels-first (C, H, W) or (H, W), as torchvision uses them.
    source : str, default="<array>"
        Name of the image used in error messages.

    Returns
    -------
    PIL.Image.Image
        Image in mode ``"RGB"``.

    Raises
    ------
    ImageLoadError
        On a wrong number of dimensions or channels, NaN/inf, or pixel values
        outside the range of the rules above.

    Examples
    --------
    >>> import numpy as np
    >>> array_to_image(np.ones((2, 3), dtype=np.float32)).size
    (3, 2)
    """
    from_tensor = _is_tensor(array)
    if from_tensor:
        values = array.detach().cpu()
        if values.is_floating_point():
            # float16/bfloat16 have no (or no lossless) numpy counterpart.
            values = values.float()
        values = values.numpy()
    else:
        values = np.asarray(array)
    channels_first = _array_channel_layout(values.shape, from_tensor, source)
    if channels_first:
        values = np.moveaxis(values, 0, -1)
    pixels = _pixels_to_uint8(values, source)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim == 2:
        return Image.fromarray(pixels, mode="L").convert("RGB")
    if pixels.shape[-1] == 4:
        return _composite_on_background(Image.fromarray(pixels, mode="RGBA"))
    return Image.fromarray(pixels, mode="RGB")


def unexpected_error(source: str, exc: BaseException) -> ImageLoadError:
    """An ImageLoadError naming ``source`` for an exception no rule foresaw.

    PIL plugins raise whatever they like (AssertionError, struct.error,
    TypeError...); an error that does not say which of a thousand images
    failed is useless, and ``on_error="nan"`` must be able to skip it.
    """
    error = ImageLoadError(source, f"unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _open_reason(exc):
    """Short human reason for an exception raised while opening a file."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file, or a format PIL cannot read"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"decompression bomb protection: {exc}"
    message = str(exc)
    if "truncated" in message.lower():
        return f"file is truncated or corrupt ({message})"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _decode_file(file_or_path, source, draft_size, tensor_ok=False):
    """Open, fully decode and convert one encoded image (path or bytes).

    With ``tensor_ok`` a JPEG that :func:`._jpeg.jpeg_as_tensor` can decode
    comes back as its uint8 CHW tensor (the same pixels), anything else as
    an RGB PIL image.
    """
    try:
        if isinstance(file_or_path, (str, bytes)):  # a path (os.fspath gives bytes for bytes paths)
            file_or_path = open_image_file(file_or_path, source)
        with file_or_path:
            return _decode_open_file(file_or_path, source, draft_size, tensor_ok)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) + _DECODE_ERRORS as exc:
        raise ImageLoadError(source, _open_reason(exc)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 -- see unexpected_error
        raise unexpected_error(source, exc) from exc


def _decode_open_file(file, source, draft_size, tensor_ok):
    """The body of :func:`_decode_file`, on an open binary file; its caller maps the errors."""
    with _WARNING_FILTER_LOCK, warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; an
        # image that large is treated as a bomb here too, without
        # changing PIL's global settings.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = Image.open(file)
    with opened as image:
        if image.format == "JPEG" and (tensor_ok or draft_size is not None):
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
            pixels = jpeg_as_tensor(image, orientation, draft_size) if tensor_ok else None
            if pixels is not None:
                return pixels
            if draft_size is not None:
                image.draft("RGB", stored_draft_size(draft_size, orientation))
        # Decode now, inside the caller's try, so corrupt data fails here.
        image.load()
        rgb = to_rgb(image, source=source)
        # Multi-frame TIFFs re-arm their lazy decoder whenever the frame
        # count is read or frame 0 is sought, so the RGB image (the
        # file's own object when already RGB) may hold no pixels yet:
        # read them while the file is still open. A no-op when loaded.
        rgb.load()
        return rgb


def load_image(
    item: ImageItem | None, *, source: str | None = None, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Load one image of any supported kind as an 8-bit RGB PIL image.

    Parameters
    ----------
    item : str, os.PathLike, bytes, PIL.Image.Image, numpy.ndarray or torch.Tensor
        A path to an image file, a URL (``s3://``, ``https://``, ``file://``...,
        read through fsspec, the ``remote`` extra), the encoded bytes of one,
        a PIL image, a numpy HWC/HW array or a torch CHW/HW tensor.
    source : str or None, default=None
        Name of the image in error messages; by default the path, or a short
        description of the in-memory object.
    draft_size : tuple of int (width, height) or None, default=None
        For JPEG files, the smallest size needed downstream: the decoder then
        works at 1/2, 1/4 or 1/8 scale, never below this size, which makes
        decoding for a downscaling transform much faster. Other inputs ignore
        it. The size refers to the upright (EXIF-rotated) image.

    Returns
    -------
    PIL.Image.Image
        Image in mode ``"RGB"``, EXIF orientation applied. An upright RGB PIL
        image passed in is returned as is, not copied.

    Raises
    ------
    ImageLoadError
        If the file is missing, a directory, not a regular file (a FIFO or a
        device such as ``/dev/zero``, refused without reading it), not an
        image, truncated, a decompression bomb, or the pixels cannot be
        converted; or `item` is None (a missing value).
    ImportError
        If `item` is a URL and fsspec is not installed.
    TypeError
        If `item` is of none of the kinds above.

    Examples
    --------
    >>> import numpy as np
    >>> load_image(np.zeros((8, 8, 3), dtype=np.uint8)).mode
    'RGB'
    """
    return _load(item, source, draft_size, tensor_ok=False)


def load_pixels(
    item: ImageItem | None, *, source: str | None = None, draft_size: tuple[int, int] | None = None
) -> Image.Image | torch.Tensor:
    """Like :func:`load_image`, but JPEG files may come back as uint8 tensors.

    Once torchvision is imported, a JPEG file (path, URL or bytes) in RGB or
    grey that draft mode would not shrink is decoded by
    ``torchvision.io.decode_jpeg`` into a uint8 CHW tensor: the same pixels
    as :func:`load_image`'s, without holding the GIL and without the copy
    from a PIL image. Everything else is returned as :func:`load_image`
    returns it.

    Returns
    -------
    PIL.Image.Image or torch.Tensor
        An RGB PIL image, or a uint8 tensor of shape (3, height, width).

    Examples
    --------
    >>> import io
    >>> import torchvision.io
    >>> from PIL import Image
    >>> encoded = io.BytesIO()
    >>> Image.new("RGB", (6, 4), (200, 10, 10)).save(encoded, "JPEG")
    >>> pixels = load_pixels(encoded.getvalue())
    >>> tuple(pixels.shape), pixels.dtype
    ((3, 4, 6), torch.uint8)
    """
    return _load(item, source, draft_size, tensor_ok=True)


def _load(item, source, draft_size, tensor_ok):
    if source is None:
        source = describe_source(item)
    if item is None:
        # check_images turns every missing value (NaN, pandas.NA, NaT) into None.
        raise ImageLoadError(source, "missing value: no image given")
    if is_url(item):
        return _decode_file(io.BytesIO(read_url(item, source)), source, draft_size, tensor_ok)
    if isinstance(item, (str, os.PathLike)):
        return _decode_file(os.fspath(item), source, draft_size, tensor_ok)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _decode_file(io.BytesIO(bytes(item)), source, draft_size, tensor_ok)
    if isinstance(item, Image.Image):
        try:
            item.load()
            return to_rgb(item, source=source)
        except ImageLoadError:
            raise
        except _DECODE_ERRORS as exc:
            raise ImageLoadError(source, _open_reason(exc)) from exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 -- e.g. an image whose file was closed
            raise unexpected_error(source, exc) from exc
    if isinstance(item, np.ndarray) or _is_tensor(item):
        return array_to_image(item, source)
    raise TypeError(
        f"cannot read image {source}: expected a path, bytes, PIL image, numpy "
        f"array or torch tensor, got {type(item).__name__}"
    )

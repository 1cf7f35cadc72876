"""JPEG files decoded straight to a uint8 tensor, outside the GIL.

PIL and ``torchvision.io.decode_jpeg`` both decode with libjpeg-turbo and
give the same pixels, but PIL feeds its decoder from a Python loop that holds
the GIL between chunks, so decoding threads queue behind each other;
``decode_jpeg`` decodes the whole file in one call that releases it. It also
returns the tensor the resize kernel reads, where a PIL image would need a
copy to become one.

Importing torchvision costs more than ``decode_jpeg`` saves on a few
hundred photos, so this path runs only once torchvision is imported:
by the caller, by the fine-tuner's ``augment="light"``, or by
:func:`prepare_for` for a job of :data:`DECODE_JPEG_MIN_IMAGES` or more.

The PIL path stays the reference: it handles every other format and mode,
and JPEGs large enough for draft mode (decoding at 1/2, 1/4 or 1/8 scale,
which ``decode_jpeg`` cannot do). Only baseline and progressive JPEGs whose
colour model PIL reads as RGB or grey take this path, so the pixels are
PIL's own; any failure falls back to PIL, which reports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Images from which decoding with decode_jpeg saves more than torchvision's
# import costs (benchmarks/decode.py measures both; benchmarks/RESULTS.md).
DECODE_JPEG_MIN_IMAGES = 2000

# Colour models whose conversion to RGB is the same in PIL and libjpeg-turbo
# (grey is repeated over the three channels). CMYK/YCCK files go through PIL.
_SAME_PIXELS_MODES = frozenset({"RGB", "L"})

# EXIF orientations 5..8 swap width and height when applied.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def stored_draft_size(draft_size: tuple[int, int], orientation: int | None) -> tuple[int, int]:
    """The draft size as (width, height) of the stored image, before EXIF rotation."""
    width, height = (int(side) for side in draft_size)
    if orientation in _TRANSPOSING_ORIENTATIONS:
        # The stored image is rotated by 90 degrees.
        width, height = height, width
    return width, height


def draft_reduces(image: Image.Image, draft_size: tuple[int, int] | None, orientation: int | None) -> bool:
    """Whether PIL's JPEG draft mode would decode ``image`` at a reduced scale.

    PIL's rule: it decodes at the largest scale 1/8, 1/4 or 1/2 that keeps
    both sides at least the requested ones, so at reduced scale exactly when
    both sides are at least twice those.
    """
    if draft_size is None:
        return False
    width, height = stored_draft_size(draft_size, orientation)
    stored_width, stored_height = image.size
    return min(stored_width // max(width, 1), stored_height // max(height, 1)) >= 2


def prepare_for(n_images: int) -> None:
    """Import torchvision's decoder when a job of ``n_images`` pays for it."""
    if n_images >= DECODE_JPEG_MIN_IMAGES and "torchvision.io" not in sys.modules:
        try:
            import torchvision.io  # noqa: F401
        except ImportError:  # the PIL path needs no torchvision
            pass


def jpeg_as_tensor(
    image: Image.Image, orientation: int | None, draft_size: tuple[int, int] | None
) -> torch.Tensor | None:
    """The upright RGB pixels of an opened JPEG as a uint8 CHW tensor, or None.

    Parameters
    ----------
    image : PIL.JpegImagePlugin.JpegImageFile
        Opened (header read), not yet decoded.
    orientation : int or None
        Its EXIF orientation.
    draft_size : tuple of int or None
        The draft size the PIL path would use.

    Returns
    -------
    torch.Tensor or None
        None when torchvision is not imported, when the file is not one this
        path decodes to PIL's pixels (a colour model other than RGB or grey,
        a size draft mode would reduce) or when ``decode_jpeg`` fails: the
        caller decodes with PIL then.
    """
    tv_io = sys.modules.get("torchvision.io")
    if tv_io is None or image.mode not in _SAME_PIXELS_MODES:
        return None
    if draft_reduces(image, draft_size, orientation):
        return None
    import torch  # already imported with torchvision

    decode_jpeg, ImageReadMode = tv_io.decode_jpeg, tv_io.ImageReadMode

    stream = image.fp
    try:
        stream.seek(0)
        data = bytearray(stream.read())
        return decode_jpeg(
            torch.frombuffer(data, dtype=torch.uint8),
            mode=ImageReadMode.RGB,
            apply_exif_orientation=orientation not in (None, 1),
        )
    except (RuntimeError, OSError, ValueError):
        # Truncated or corrupt data: PIL decodes it again and names the problem.
        return None
    finally:
        stream.seek(0)


__all__ = ["DECODE_JPEG_MIN_IMAGES", "draft_reduces", "jpeg_as_tensor", "prepare_for", "stored_draft_size"]

"""Keys of the embedding store: what an image is, and what made its embedding.

An image is named by the SHA-256 of its content, never by its path: a file
rewritten under the same name gets a new key (no stale embeddings), and the
same photo under two names is embedded once. Hashing a file reads it once
(the page cache makes the decoder's later read of a miss cheap), which costs
far less than decoding it. A file or URL that is embedded is keyed by the
very bytes the decoder reads (:func:`read_with_key`: one read, hashed and
decoded), so a file replaced between the look-up and the decoding is stored
under its new content's key, never under the old one's. An in-memory PIL image is keyed by the pixels it
decodes to (EXIF orientation, frame, palette and transparency applied), so
two images that look alike but decode differently never share a key.
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np
from PIL import Image

from .._typing import ImageItem
from ..image import ImageLoadError, is_url, load_image, open_image_file, read_url

__all__ = ["content_key", "read_with_key"]

_READ_BLOCK = 1 << 20


def _file_digest(path):
    h = hashlib.sha256()
    # A FIFO or a device (a link to /dev/zero) is refused, not read forever.
    with open_image_file(path, os.fspath(path)) as file:
        while block := file.read(_READ_BLOCK):
            h.update(block)
    return h.digest()


def _read_file(path):
    # A FIFO or a device is refused here too (open_image_file).
    with open_image_file(path, os.fspath(path)) as file:
        return file.read()


def _pixels_digest(kind, pixels, *header):
    """Hash of raw pixels plus what is needed to read them back (shape, dtype or mode)."""
    h = hashlib.sha256()
    h.update(repr((kind, *header)).encode())
    h.update(pixels)
    return h.digest()


def content_key(item: ImageItem) -> bytes | None:
    """SHA-256 (32 bytes) of one image's content, or None when it cannot be read.

    Files and URLs are hashed by their bytes, as are encoded images passed as
    bytes (so a path and its bytes share a key); PIL images by their decoded
    RGB pixels and size; arrays and tensors by their values, shape and dtype.
    None (unreadable, missing, not a regular file, a URL whose file system
    package is not installed) means "not in the store": the decoder then
    reports the real error, or gives a NaN row with ``on_error="nan"``.
    PIL images are keyed by what :func:`~sktransfer.image.load_image` makes
    of them: an EXIF orientation, the first frame, a palette and
    transparency change the key as they change the decoded pixels.

    Parameters
    ----------
    item : path, URL, bytes, PIL image, numpy array or torch tensor

    Returns
    -------
    bytes or None

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((2, 2, 3), dtype=np.uint8)
    >>> content_key(a) == content_key(a.copy()), content_key(a) == content_key(a.astype(np.uint16))
    (True, False)
    """
    try:
        if isinstance(item, str) and is_url(item):
            return hashlib.sha256(read_url(item, item)).digest()
        if isinstance(item, (str, os.PathLike)):
            return _file_digest(item)
    except (OSError, ValueError, ImportError):
        # Missing, unreadable, not a regular file (ImageLoadError is a
        # ValueError), or a URL whose file system package (s3fs, aiohttp) is
        # missing: decoding says why, and on_error="nan" applies to it.
        return None
    if isinstance(item, (bytes, bytearray, memoryview)):
        return hashlib.sha256(item).digest()
    if isinstance(item, Image.Image):
        try:
            # What the decoder feeds the network, not the image's raw pixels:
            # these ignore its EXIF orientation, palette and transparency.
            # An upright RGB image is its own decoded image (same key as before).
            decoded = load_image(item)
        except ImageLoadError:
            return None
        return _pixels_digest("pil", decoded.tobytes(), decoded.size, decoded.mode)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(item, torch.Tensor):
        item = item.detach().cpu()
        if item.is_floating_point():
            item = item.float()
        array = item.contiguous().numpy()
        return _pixels_digest("tensor", array.tobytes(), array.shape, str(array.dtype))
    if isinstance(item, np.ndarray):
        array = np.ascontiguousarray(item)
        return _pixels_digest("array", array.tobytes(), array.shape, str(array.dtype))
    return None


def read_with_key(item: ImageItem) -> tuple[ImageItem, bytes | None]:
    """``(what to decode, its content key)``, the key computed from what is decoded.

    A file or a URL is read once: its bytes are returned for the decoder,
    with their SHA-256 (the key :func:`content_key` gives the same
    content). A file replaced after an earlier :func:`content_key` of its
    path is therefore keyed by the photo that is actually embedded. Any
    other item (bytes, PIL image, array, tensor) is in memory: it is
    returned as is, with :func:`content_key`'s key. An item that cannot be
    read is returned as is with the key None, for the decoder to report
    why.

    Parameters
    ----------
    item : path, URL, bytes, PIL image, numpy array or torch tensor

    Returns
    -------
    item : bytes or the item
    key : bytes or None

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> with open(path, "wb") as file:
    ...     _ = file.write(b"some bytes")
    >>> data, key = read_with_key(path)
    >>> data, key == content_key(path) == content_key(data)
    (b'some bytes', True)
    """
    if not isinstance(item, (str, os.PathLike)):
        return item, content_key(item)
    try:
        data = read_url(item, item) if isinstance(item, str) and is_url(item) else _read_file(item)
    except (OSError, ValueError, ImportError):  # as in content_key: the decoder says why
        return item, None
    return data, hashlib.sha256(data).digest()

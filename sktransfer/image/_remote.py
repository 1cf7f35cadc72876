"""Where an image's bytes come from: a local file, or a URL read through fsspec.

Only regular files are read: a FIFO named like an image would wait forever
for a writer and a link to ``/dev/zero`` never ends, so both are refused
before any read, whether named by a path or by a ``file://`` URL.

URLs (``s3://``, ``gs://``, ``https://``, ``file://``...) are read through
fsspec, an optional extra (``pip install sktransfer[remote]``, plus the
file system's own package, e.g. ``s3fs`` or ``gcsfs``): it is imported only
when a URL is met, and its absence is an ImportError saying what to install,
raised when the collection is checked, before any work.
"""

from __future__ import annotations

import errno
import importlib.util
import io
import os
import re
import stat

from ._errors import ImageLoadError

__all__ = ["is_url", "open_image_file", "read_url", "require_fsspec"]

# A scheme of two or more characters, so "C:/photos/x.jpg" stays a path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")


def is_url(text: object) -> bool:
    """Whether a string starts with a URL scheme (``s3://``, ``memory://``, ...).

    Examples
    --------
    >>> is_url("s3://bucket/cat.jpg"), is_url("photos/cat.jpg"), is_url("C:/cat.jpg")
    (True, False, False)
    """
    return isinstance(text, str) and _URL.match(text) is not None


# What a path names when it is not a regular file, for the error message.
_SPECIAL_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_image_file(path: str | os.PathLike, source: str) -> io.BufferedReader:
    """Open `path` for reading in binary mode if it is a regular file.

    Symbolic links are followed. A FIFO is opened without waiting for a
    writer, so that nothing named like an image can block or never end: a
    FIFO waits forever for its writer and a device such as ``/dev/zero``
    never reaches its end. Both are refused, as is everything else that is
    not a regular file (the check is made on the opened file, so the path
    cannot be swapped between the check and the read).

    Parameters
    ----------
    path : str or os.PathLike
        The file to open.
    source : str
        Name of the image in error messages.

    Returns
    -------
    io.BufferedReader
        The open file; the caller closes it.

    Raises
    ------
    ImageLoadError
        If `path` is a FIFO, a device, a socket or any other special file.
    OSError
        As :func:`open` raises it: FileNotFoundError, PermissionError, and
        IsADirectoryError for a directory.

    Examples
    --------
    >>> import os
    >>> open_image_file(os.devnull, "null.jpg")
    Traceback (most recent call last):
    ...
    sktransfer.image._errors.ImageLoadError: cannot read image null.jpg: not a regular file (a character device); ...
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _SPECIAL_FILE_KINDS if test(mode)), "a special file")
            raise ImageLoadError(source, f"not a regular file ({kind}); only image files can be read")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def require_fsspec(url: str) -> None:
    """Raise an ImportError naming the extra when fsspec is not installed."""
    if importlib.util.find_spec("fsspec") is None:
        scheme = url.split("://", 1)[0]
        raise ImportError(
            f"reading images from {scheme}:// URLs (such as {url!r}) needs fsspec: "
            "pip install 'sktransfer[remote]' (and the package of that file system, "
            "e.g. s3fs for s3://, gcsfs for gs://)"
        )


def read_url(url: str, source: str) -> bytes:
    """The bytes of the file at `url`.

    Raises
    ------
    ImportError
        When fsspec is not installed.
    ImageLoadError
        When the file does not exist, cannot be read, or (for ``file://``)
        is not a regular file.
    """
    require_fsspec(url)
    import fsspec.core

    try:
        file_system, path = fsspec.core.url_to_fs(url)
        if "file" in file_system.protocol:  # file:// URLs: regular files only, as for paths
            with open_image_file(path, source) as file:
                return file.read()
        with fsspec.open(url, "rb") as file:
            return file.read()
    except FileNotFoundError as exc:
        raise ImageLoadError(source, "file not found") from exc
    except ImportError:
        raise  # the file system's own package (s3fs, gcsfs) is missing
    except (OSError, ValueError) as exc:
        raise ImageLoadError(source, f"cannot read the URL ({type(exc).__name__}: {exc})") from exc

"""Images named by URL (``s3://``, ``gs://``, ``https://``, ``file://``...), read through fsspec.

fsspec is an optional extra (``pip install sktransfer[remote]``, plus the
file system's own package, e.g. ``s3fs`` or ``gcsfs``): it is imported only
when a URL is met, and its absence is an ImportError saying what to install,
raised when the collection is checked, before any work.
"""

from __future__ import annotations

import importlib.util
import re

from ._errors import ImageLoadError

__all__ = ["is_url", "read_url", "require_fsspec"]

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
        When the file does not exist or cannot be read.
    """
    require_fsspec(url)
    import fsspec

    try:
        with fsspec.open(url, "rb") as file:
            return file.read()
    except FileNotFoundError as exc:
        raise ImageLoadError(source, "file not found") from exc
    except ImportError:
        raise  # the file system's own package (s3fs, gcsfs) is missing
    except (OSError, ValueError) as exc:
        raise ImageLoadError(source, f"cannot read the URL ({type(exc).__name__}: {exc})") from exc

"""The one error every image input failure becomes: :class:`ImageLoadError`.

Its own module because every way of reading an image raises it: decoding
(:mod:`._decode`), reading a URL (:mod:`._remote`) and the batch decoder.
"""

from __future__ import annotations

__all__ = ["ImageLoadError"]


class ImageLoadError(ValueError):
    """An image could not be read or converted to RGB.

    Parameters
    ----------
    source : str
        The file path, or a short description of an in-memory input such as
        ``"X[3] (PIL image)"``.
    reason : str
        Why the image could not be used.

    Examples
    --------
    >>> err = ImageLoadError("cat.jpg", "file not found")
    >>> str(err)
    'cannot read image cat.jpg: file not found'
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = str(source)
        self.reason = str(reason)
        super().__init__(f"cannot read image {self.source}: {self.reason}")

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str]]:
        # Default exception pickling would call __init__ with the message
        # only; worker processes send these errors back to the parent.
        return (type(self), (self.source, self.reason))

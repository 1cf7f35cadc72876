"""Reading images: any input kind and PIL mode to RGB, collections, batches.

Importing this subpackage does not import torch; the batch decoder does.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    # The lazy exports below, imported for static tools only (type checkers,
    # an editor's go-to-definition): `X as X` marks a re-export. At run
    # time attach imports each on first use.
    from ._batch_decoder import BatchDecoder as BatchDecoder
    from ._collections import check_images as check_images
    from ._decode import ImageLoadError as ImageLoadError
    from ._decode import array_to_image as array_to_image
    from ._decode import load_image as load_image
    from ._decode import to_rgb as to_rgb

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ImageLoadError": "._decode",
        "load_image": "._decode",
        "to_rgb": "._decode",
        "array_to_image": "._decode",
        "check_images": "._collections",
        "BatchDecoder": "._batch_decoder",
    },
)

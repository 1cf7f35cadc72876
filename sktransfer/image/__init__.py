"""Reading images: any input kind and PIL mode to RGB, collections, batches.

Importing this subpackage does not import torch; the batch decoder does.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ImageLoadError": "._errors",
        "load_image": "._decode",
        "to_rgb": "._decode",
        "array_to_image": "._decode",
        "check_images": "._collections",
        "BatchDecoder": "._batch_decoder",
        "decode_all": "._batch_decoder",
        "is_url": "._remote",
        "read_url": "._remote",
    },
)

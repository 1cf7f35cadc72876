"""Reading images: any input kind and PIL mode to RGB, collections, batches.

Importing this subpackage does not import torch; the batch decoder does.
"""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._batch_decoder import BatchDecoder as BatchDecoder
    from ._batch_decoder import decode_all as decode_all
    from ._batch_decoder import resolve_num_workers as resolve_num_workers
    from ._collections import check_images as check_images
    from ._decode import array_to_image as array_to_image
    from ._decode import load_image as load_image
    from ._decode import to_rgb as to_rgb
    from ._errors import ImageLoadError as ImageLoadError
    from ._remote import is_url as is_url
    from ._remote import open_image_file as open_image_file
    from ._remote import read_url as read_url
    from ._validation import validate_images as validate_images

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

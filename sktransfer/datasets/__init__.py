"""Data sets and folder loaders returning image paths and labels.

Loaders return file paths (not decoded pixels): image data sets are large,
and :class:`~sktransfer.PretrainedFeatureExtractor` reads paths lazily.
"""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only; at run time each is
# imported on first use, so that listing a folder does not import
# scikit-learn (fetch_hymenoptera's Bunch).
if TYPE_CHECKING:
    from ._base import find_data_dir as find_data_dir
    from ._base import get_data_home as get_data_home
    from ._folder import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
    from ._folder import list_image_files as list_image_files
    from ._folder import load_image_folder as load_image_folder
    from ._hymenoptera import HYMENOPTERA_URL as HYMENOPTERA_URL
    from ._hymenoptera import fetch_hymenoptera as fetch_hymenoptera
    from ._split_names import SPLIT_NAMES as SPLIT_NAMES
    from ._split_names import split_of as split_of
    from ._splits import load_image_splits as load_image_splits

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

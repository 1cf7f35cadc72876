"""Data sets and folder loaders returning image paths and labels.

Loaders return file paths (not decoded pixels): image data sets are large,
and :class:`~sktransfer.PretrainedFeatureExtractor` reads paths lazily.
"""

from ._base import find_data_dir, get_data_home
from ._folder import IMAGE_EXTENSIONS, list_image_files, load_image_folder
from ._hymenoptera import HYMENOPTERA_URL, fetch_hymenoptera
from ._split_names import SPLIT_NAMES, split_of
from ._splits import load_image_splits

__all__ = [
    "HYMENOPTERA_URL",
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "fetch_hymenoptera",
    "find_data_dir",
    "get_data_home",
    "list_image_files",
    "load_image_folder",
    "load_image_splits",
    "split_of",
]

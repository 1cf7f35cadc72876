"""Backbones: pretrained networks cut into ordered layer groups."""

from ._base import Backbone, Preprocessing
from ._hub import WeightsNotAvailableError
from ._registry import OFFLINE_BACKBONE, get_backbone, list_backbones
from ._tiny import make_tiny_backbone

__all__ = [
    "Backbone",
    "Preprocessing",
    "OFFLINE_BACKBONE",
    "WeightsNotAvailableError",
    "get_backbone",
    "list_backbones",
    "make_tiny_backbone",
]

"""Utilities shared by the estimators: device and precision."""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._device import autocast_context as autocast_context
    from ._device import resolve_device as resolve_device

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

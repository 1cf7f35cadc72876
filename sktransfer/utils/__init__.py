"""Utilities shared by the estimators: device and precision."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    # The lazy exports below, imported for static tools only (type checkers,
    # an editor's go-to-definition): `X as X` marks a re-export. At run
    # time attach imports each on first use.
    from ._device import autocast_context as autocast_context
    from ._device import resolve_device as resolve_device

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "resolve_device": "._device",
        "autocast_context": "._device",
    },
)

"""Utilities shared by the estimators: device and precision."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "resolve_device": "._device",
        "autocast_context": "._device",
    },
)

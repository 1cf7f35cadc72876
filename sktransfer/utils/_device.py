"""Choosing the device and numeric precision a network runs with."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` to cuda, then mps, then cpu; validate anything else.

    Parameters
    ----------
    device : str or torch.device, default="auto"

    Returns
    -------
    torch.device

    Examples
    --------
    >>> from sktransfer.utils._device import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return resolved


def autocast_context(device: torch.device, dtype: str | None) -> AbstractContextManager[Any]:
    """Mixed precision for ``dtype`` float16/bfloat16; a no-op for float32."""
    import contextlib

    if dtype in (None, "float32"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])

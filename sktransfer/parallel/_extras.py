"""Importing an optional extra, or saying which one to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; a missing one is an ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this needs {module.partition('.')[0]}, which is not installed: pip install 'sktransfer[{extra}]'"
        ) from exc

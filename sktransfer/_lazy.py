"""Lazy re-exports (PEP 562): a public name is imported on first access.

``import sktransfer`` and ``import sktransfer.shift`` stay cheap: torch and
skorch are imported only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attach(
    package_name: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package.

    Parameters
    ----------
    package_name : str
        The package's ``__name__``.
    exports : dict of str to str
        Public name -> module that defines it, relative to the package
        (``"._extractor"``) or absolute.

    Returns
    -------
    (__getattr__, __dir__, __all__)
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package_name), name)
        # Cache it on the package: later accesses skip __getattr__.
        setattr(importlib.import_module(package_name), name, value)
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__, names

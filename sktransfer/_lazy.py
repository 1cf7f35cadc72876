"""Lazy re-exports (PEP 562): a public name is imported on first access.

``import sktransfer`` and ``import sktransfer.shift`` stay cheap: torch and
skorch are imported only when a name that needs them is first used.

A package lists its public names once, as the imports of an
``if TYPE_CHECKING:`` block in its ``__init__.py`` (which static tools
read: type checkers, an editor's go-to-definition), and
:func:`attach_type_checking` turns that block into the run-time lazy
exports, so the two cannot disagree.
"""

from __future__ import annotations

import ast
import importlib
import os
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


def attach_type_checking(
    package_name: str, init_file: str | os.PathLike[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """:func:`attach` for the names a package's ``__init__.py`` imports under ``if TYPE_CHECKING:``.

    Parameters
    ----------
    package_name : str
        The package's ``__name__``.
    init_file : str or os.PathLike
        The package's ``__file__``. Its ``if TYPE_CHECKING:`` block may hold
        only ``from .module import Name as Name`` statements (the form type
        checkers read as a re-export).

    Returns
    -------
    (__getattr__, __dir__, __all__)
    """
    with open(init_file, encoding="utf-8") as file:
        tree = ast.parse(file.read(), filename=os.fspath(init_file))
    exports = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.ImportFrom) or any(a.asname != a.name for a in statement.names):
                raise ImportError(
                    f"{package_name}: its TYPE_CHECKING block may hold only `from .module import Name as Name`, "
                    f"got {ast.unparse(statement)!r}"
                )
            module = "." * statement.level + (statement.module or "")
            exports.update({alias.name: module for alias in statement.names})
    return attach(package_name, exports)

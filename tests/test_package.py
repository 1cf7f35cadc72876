"""The package layout: lazy public names, light subpackages."""

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import sktransfer
from sktransfer._lazy import attach_type_checking

_ROOT = Path(sktransfer.__file__).parent


def _lazy_packages():
    """Every package whose __init__.py exports names through _lazy.attach_type_checking."""
    packages = []
    for init in sorted(_ROOT.rglob("__init__.py")):
        if "attach_type_checking(" in init.read_text(encoding="utf-8"):
            packages.append(".".join(init.parent.relative_to(_ROOT.parent).parts))
    return packages


def _type_checking_imports(package):
    """Name -> absolute module, for each import of a package's ``if TYPE_CHECKING:`` block."""
    init = _ROOT.parent.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(init.read_text(encoding="utf-8"))
    static = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                module = importlib.util.resolve_name("." * statement.level + (statement.module or ""), package)
                static.update({alias.name: module for alias in statement.names})
    return static


def test_lazy_packages_are_found():
    packages = _lazy_packages()
    assert {"sktransfer", "sktransfer.shift", "sktransfer.image", "sktransfer.runtime"} <= set(packages)


@pytest.mark.parametrize("package", _lazy_packages())
def test_the_type_checking_block_is_the_export_list(package):
    static = _type_checking_imports(package)
    assert static, f"{package}/__init__.py exports nothing"
    assert sorted(static) == sorted(set(importlib.import_module(package).__all__) - {"__version__"})


@pytest.mark.parametrize("package", _lazy_packages())
def test_lazy_exports_resolve_at_runtime(package):
    imported = importlib.import_module(package)
    for name, module in _type_checking_imports(package).items():
        assert getattr(imported, name) is getattr(importlib.import_module(module), name)
        assert name in dir(imported)


def test_a_type_checking_block_with_another_statement_is_refused(tmp_path):
    init = tmp_path / "__init__.py"
    init.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import b as c\n")
    with pytest.raises(ImportError, match="may hold only `from .module import Name as Name`"):
        attach_type_checking("pkg", init)


def _imported_after(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('torch', 'skorch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize(
    "statement",
    [
        "import sktransfer",
        "import sktransfer.shift",
        "from sktransfer import CORAL, transfer_gain, detect_shift",
        "from sktransfer.shift import LabelShiftAdapter, ResampledClassifier",
        "from sktransfer.image import load_image, check_images",
        "import sktransfer.datasets",
        "from sktransfer.parallel import dask_transform, RayEmbedder, worker_thread_budget",
        *(f"import {package}" for package in _lazy_packages()),
    ],
)
def test_light_imports_need_neither_torch_nor_skorch(statement):
    assert _imported_after(statement) == "[]"


def test_estimators_import_torch_when_used():
    assert _imported_after("from sktransfer import FineTuneClassifier") == "['skorch', 'torch']"


@pytest.mark.parametrize("name", sorted(set(sktransfer.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_its_subpackage(name):
    value = getattr(sktransfer, name)
    assert value.__module__.startswith("sktransfer.")
    assert name in dir(sktransfer)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        sktransfer.Nope  # noqa: B018

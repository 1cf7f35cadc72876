"""The package layout: lazy public names, light subpackages."""

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import sktransfer

_ROOT = Path(sktransfer.__file__).parent

def _lazy_packages():
    """Every package whose __init__.py exports names through _lazy.attach."""
    packages = []
    for init in sorted(_ROOT.rglob("__init__.py")):
        if "attach(" in init.read_text(encoding="utf-8"):
            packages.append(".".join(init.parent.relative_to(_ROOT.parent).parts))
    return packages


def _parse_init(package):
    """(lazy exports, TYPE_CHECKING imports or None) of a package, both as name -> absolute module."""
    init = _ROOT.parent.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(init.read_text(encoding="utf-8"))
    assignments = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "attach"]
    exports_node = call.args[1]
    if isinstance(exports_node, ast.Name):
        exports_node = assignments[exports_node.id]
    lazy = {
        name: importlib.util.resolve_name(module, package) for name, module in ast.literal_eval(exports_node).items()
    }
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    ]
    if not blocks:
        return lazy, None
    static = {}
    for block in blocks:
        for node in block.body:
            if isinstance(node, ast.ImportFrom):
                module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                for alias in node.names:
                    # `X as X`: the form type checkers read as a re-export.
                    assert alias.asname == alias.name, f"{package}: write `{alias.name} as {alias.name}`"
                    static[alias.name] = module
    return lazy, static


def test_lazy_packages_are_found():
    packages = _lazy_packages()
    assert {"sktransfer", "sktransfer.shift", "sktransfer.image", "sktransfer.feature_extraction"} <= set(packages)


@pytest.mark.parametrize("package", _lazy_packages())
def test_type_checking_block_matches_lazy_exports(package):
    lazy, static = _parse_init(package)
    assert static is not None, f"{package}/__init__.py needs an `if TYPE_CHECKING:` block importing its lazy exports"
    assert static == lazy
    assert sorted(lazy) == sorted(set(importlib.import_module(package).__all__) - {"__version__"})


@pytest.mark.parametrize("package", _lazy_packages())
def test_lazy_exports_resolve_at_runtime(package):
    lazy, _ = _parse_init(package)
    imported = importlib.import_module(package)
    for name, module in lazy.items():
        assert getattr(imported, name) is getattr(importlib.import_module(module), name)


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

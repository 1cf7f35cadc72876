"""Every public function and method of the package carries type hints.

The public API is what each subpackage exports (``__all__`` / ``__dir__``)
plus the public methods of the classes it exports that are defined in
sktransfer (methods inherited from scikit-learn, skorch or torch are not
ours). A parameter other than ``self``/``cls``/``*args``/``**kwargs``, or a
return, without an annotation fails, naming the function.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import typing

import pytest

import sktransfer

# Where the public names are: every subpackage's ``__all__`` (found by
# walking the package, so a new subpackage is covered too), the public
# module of estimator checks, and the command line's entry point.
_MODULES = [
    "sktransfer",
    *sorted(f"sktransfer.{info.name}" for info in pkgutil.iter_modules(sktransfer.__path__) if info.ispkg),
    "sktransfer.utils.estimator_checks",
]
_EXTRA_FUNCTIONS = [
    ("sktransfer.__main__", "main"),
    ("sktransfer._lazy", "attach"),
]


def _type_checking_names(module_name):
    """The names a module imports under ``if TYPE_CHECKING:``, imported."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            block = ast.Module(body=node.body, type_ignores=[])
            exec(
                compile(block, module.__file__, "exec"),
                {"__name__": module_name, "__package__": module.__package__},
                names,
            )
    return names


_ALL_TYPE_CHECKING_NAMES = {
    name: value
    for info in pkgutil.walk_packages(sktransfer.__path__, "sktransfer.")
    if info.name != "sktransfer.__main__"
    for name, value in _type_checking_names(info.name).items()
}


def _ours(obj):
    module = getattr(obj, "__module__", None) or ""
    return module.startswith("sktransfer")


def _methods(cls):
    """``(qualified name, function)`` of each public method (and ``__init__``) of ``cls`` defined in sktransfer.

    Properties count by their getter, ``available_if`` methods by the wrapped
    function; a name is looked up along the MRO, as Python does, so a method
    that a scikit-learn base class overrides is not ours.
    """
    seen = set()
    for klass in cls.__mro__:
        for name, attribute in vars(klass).items():
            if name in seen or (name.startswith("_") and name != "__init__"):
                continue
            seen.add(name)
            if isinstance(attribute, property):
                function = attribute.fget
            elif isinstance(attribute, (staticmethod, classmethod)):
                function = attribute.__func__
            elif inspect.isfunction(getattr(attribute, "fn", None)):
                function = attribute.fn  # scikit-learn's available_if descriptor
            else:
                function = attribute
            if not inspect.isfunction(function) or not _ours(function):
                continue
            if dataclasses.is_dataclass(cls) and name == "__init__":
                continue  # generated from the annotated fields
            yield f"{cls.__module__}.{cls.__qualname__}.{name}", function


def _public_functions():
    found = {}
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or dir(module)
        for name in names:
            if name.startswith("_"):
                continue
            value = getattr(module, name)
            if not _ours(value):
                continue
            if inspect.isfunction(value):
                found[f"{value.__module__}.{value.__qualname__}"] = value
            elif inspect.isclass(value):
                found.update(_methods(value))
    for module_name, name in _EXTRA_FUNCTIONS:
        found[f"{module_name}.{name}"] = getattr(importlib.import_module(module_name), name)
    return found


_FUNCTIONS = _public_functions()


def test_the_walk_finds_the_public_api():
    # A guard against a walk that silently finds nothing.
    for expected in (
        "sktransfer.shift._coral.CORAL.fit",
        "sktransfer.image._decode.load_image",
        "sktransfer.backbones._registry.get_backbone",
        "sktransfer.storage._store.EmbeddingStore.__init__",
        "sktransfer.__main__.main",
        "sktransfer.feature_extraction._extractor.PretrainedFeatureExtractor.transform",
        "sktransfer.finetune._classifier.FineTuneClassifier.fit",
        "sktransfer.runtime._engines.select_engine",
    ):
        assert expected in _FUNCTIONS


def _missing_annotations(function):
    signature = inspect.signature(function)
    missing = []
    for index, parameter in enumerate(signature.parameters.values()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if index == 0 and parameter.name in ("self", "cls"):
            continue
        if parameter.annotation is parameter.empty:
            missing.append(parameter.name)
    is_init = function.__name__ == "__init__"
    if signature.return_annotation is signature.empty and not is_init:
        missing.append("return")
    return missing


@pytest.mark.parametrize("qualname", sorted(_FUNCTIONS))
def test_public_function_is_annotated(qualname):
    function = _FUNCTIONS[qualname]
    missing = _missing_annotations(function)
    assert not missing, f"{qualname} lacks annotations for: {', '.join(missing)}"


@pytest.mark.parametrize("qualname", sorted(_FUNCTIONS))
def test_annotations_resolve(qualname):
    function = inspect.unwrap(_FUNCTIONS[qualname])
    # As a type checker reads them: the module's names plus what it imports
    # under ``if TYPE_CHECKING:`` (imported here for real, the test may), and
    # for the forward references inside shared aliases (``ImageItem`` names
    # "Image.Image"), what the other modules import there.
    namespace = {**_ALL_TYPE_CHECKING_NAMES, **function.__globals__, **_type_checking_names(function.__module__)}
    try:
        typing.get_type_hints(function, globalns=namespace)
    except NameError as error:
        raise AssertionError(f"{qualname}: annotation does not resolve ({error})") from error

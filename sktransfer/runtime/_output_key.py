"""What determines a frozen network's output: one description, one key.

Everything that keeps or reuses what a network computed needs to know when
two computations give the same result: the embedding store (an embedding
per image and configuration), the disk cache of exported graphs (one graph
per network and readout), the fine-tuner's frozen prefix, and model
selection's shared forward pass. They all describe a computation with
:func:`describe_output` and key it with :func:`output_key`, so a setting
that changes an output changes every key built from it.

The description is plain JSON (a dict of strings, numbers, lists and
dicts): it can be stored beside what it describes (the Parquet table's
metadata, the store's configuration table) and read by a person.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# Packages whose modules' code is the installed release's: named by class,
# not by source (the library version is in every description).
_LIBRARY_PACKAGES = ("torch", "torchvision", "sktransfer")


def describe_output(
    *,
    model: str,
    weights: str | None,
    readout: Mapping | None = None,
    preprocessing: Mapping | None = None,
    engine: str | None = None,
    device: str | None = None,
    precision: str = "float32",
    calibration: str | None = None,
    **settings,
) -> dict:
    """Everything that determines a frozen network's output, as a JSON-able dict.

    Parameters
    ----------
    model : str
        The architecture's name.
    weights : str or None
        The weights' reproducible identity (a package file's hash, a
        download URL) or ``"sha256=<digest>"`` of the very tensors; None
        when they cannot be named (the caller then keys nothing on disk).
    readout : mapping or None, default=None
        What is read off the network and how: layer, pooling, test-time
        augmentation, the fine-tuner's stop positions... Its entries sit at
        the top level of the description (``description["layer"]``), as do
        those of ``settings``.
    preprocessing : mapping or None, default=None
        The input preprocessing (resize, crop, normalisation).
    engine : str or None, default=None
        The engine that computes it; None where every engine runs the same
        graph (an exported float32 graph is shared by both graph engines).
    device : str or None, default=None
        Where torch computes it (a GPU does not compute bit-identical
        results to the CPU); None for the graph engines.
    precision : str, default="float32"
        The precision really run (after :func:`~._engines.effective_precision`).
    calibration : str or None, default=None
        The int8 calibration set's content key; it changes every output.
    **settings
        Anything else the caller's output depends on (its values must be
        JSON-able or have a stable ``str``).

    Returns
    -------
    dict
        With the library version added: a new release may compute differently.

    Raises
    ------
    ValueError
        When a readout entry or setting reuses the name of another entry.

    Examples
    --------
    >>> from sktransfer.runtime import describe_output, output_key
    >>> a = describe_output(model="resnet18", weights="sha256=ab", readout={"layer": None})
    >>> b = describe_output(model="resnet18", weights="sha256=ab", readout={"layer": "layer3"})
    >>> a["layer"], output_key(a) == output_key(b)
    (None, False)
    """
    from .. import __version__

    description = {
        "model": model,
        "weights": weights,
        "preprocessing": None if preprocessing is None else dict(preprocessing),
        "engine": engine,
        "device": device,
        "precision": precision,
        "calibration": calibration,
        "sktransfer": __version__,
    }
    for name, value in [*(readout or {}).items(), *settings.items()]:
        if name in description:
            raise ValueError(f"describe_output: the readout or setting {name!r} would replace an entry of that name")
        description[name] = value
    return description


def output_key(description: Mapping) -> str:
    """SHA-256 (hex) of a description's canonical JSON: equal only for equal descriptions.

    Parameters
    ----------
    description : mapping
        From :func:`describe_output` (or any JSON-able mapping).

    Returns
    -------
    str
    """
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def code_identity(module: nn.Module) -> str | None:
    """SHA-256 (hex) of what a module computes besides its weights, or None when that cannot be read.

    Two modules with equal weights compute the same only if their code is
    the same: the digest covers the module tree's structure (``repr``: the
    layers, their settings and order), the qualified name of every class in
    it, and the source of every class outside torch, torchvision and
    sktransfer (a user's ``forward``). None when such a source cannot be
    read (a class defined in an interactive session or by ``exec``): the
    caller must then key nothing by it.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    str or None

    Examples
    --------
    >>> from torch import nn
    >>> from sktransfer.runtime import code_identity
    >>> relu, tanh = nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    >>> code_identity(relu) == code_identity(tanh)
    False
    """
    parts = [repr(module)]
    classes = {type(m) for m in module.modules()}
    for cls in sorted(classes, key=lambda c: (c.__module__, c.__qualname__)):
        parts.append(f"{cls.__module__}.{cls.__qualname__}")
        if cls.__module__.split(".")[0] in _LIBRARY_PACKAGES:
            continue
        try:
            parts.append(inspect.getsource(cls))
        except (OSError, TypeError):
            return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()

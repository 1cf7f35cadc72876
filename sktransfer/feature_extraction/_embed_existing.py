"""What :func:`sktransfer.embed` does when its output file already exists (``if_exists``).

A finished table records the settings that produced it (the extractor's
``output_description()``) and every row's path and label. Asked to
``"reuse"`` it, embed compares those with the run it is about to start:
the same images and settings mean the table is already what the run would
write, so it returns at once; anything else is refused with what differs,
instead of silently replacing an earlier result.

Computing that description needs the network built (torch imported, the
weights loaded): seconds, for a rerun that then does nothing. So a table
also records the request that produced it (:func:`request_key`: the
parameters, which version of the weights file is on disk, the versions of
the libraries that compute and decode, the machine), which a rerun can
compute with nothing but the standard library, and compare with only
pyarrow imported (:func:`finished_with_request`). Only a request whose
embeddings are reproducible has a key (named weights files, packaged
weights, a seeded random network); any other, or a key that differs, goes
to the full comparison of descriptions, which alone decides a refusal.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from importlib import metadata

__all__ = ["IF_EXISTS", "finished_table_rows", "finished_with_request", "request_key"]

IF_EXISTS = ("replace", "reuse")


_SHOWN_CHARACTERS = 60

#: Distributions whose version may change the embeddings: the engines, the
#: networks, the image decoding and resizing.
_COMPUTING_DISTRIBUTIONS = ("torch", "torchvision", "timm", "onnxruntime", "openvino", "numpy", "pillow")


def _weights_version(model, weights):
    """Which weights `weights` of `model` are on disk now, JSON-able; None when that cannot be had cheaply.

    Mirrors :func:`sktransfer.backbones._weights.weights_identity` without
    reading a file: a file by its stat signature (its change time moves on
    every write), the packaged file likewise, a seeded random network by
    its name. Downloaded weights (torchvision, the Hugging Face cache) get
    None: the full comparison names them.
    """
    from .._weight_files import (
        SEEDED_RANDOM_MODELS,
        expand_weights_path,
        file_signature,
        is_weights_path,
        packaged_weights_path,
    )

    if weights is None:
        return "seeded random" if model.lower() in SEEDED_RANDOM_MODELS else None
    if is_weights_path(weights):
        return list(file_signature(weights)) if os.path.isfile(expand_weights_path(weights)) else None
    if not isinstance(weights, str):
        return None  # a torchvision weights enum member
    try:
        packaged = packaged_weights_path(model, weights)
    except ImportError:
        return None  # building the network says which package to install
    return None if packaged is None else {weights: list(file_signature(packaged))}


def _installed_version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def request_key(model, weights, layer):
    """What an :func:`sktransfer.embed` run that builds its own extractor asks for, JSON-able; None when unknown.

    The arguments that set the extractor's output (`model`, `weights`,
    `layer`; every other parameter keeps its default), the version of the
    weights on disk, the versions of sktransfer and of the libraries that
    compute, and the machine (``engine``, ``device`` and ``precision`` are
    ``"auto"`` or fall back by what the machine has). Computed with the
    standard library alone: no network built, no torch imported.

    Returns
    -------
    dict or None
        None when the weights' version cannot be had without building the
        network (a module passed in, downloaded weights, an unseeded
        random initialisation, a missing file).
    """
    from .. import __version__

    if not isinstance(model, str):
        return None
    version = _weights_version(model, weights)
    if version is None:
        return None
    try:
        json.dumps(layer)
    except TypeError:
        return None
    return {
        "model": model,
        "weights": os.fspath(weights) if weights is not None else None,
        "weights_version": version,
        "layer": layer,
        "versions": {"sktransfer": __version__} | {name: _installed_version(name) for name in _COMPUTING_DISTRIBUTIONS},
        "machine": {
            "host": socket.gethostname(),
            "platform": platform.machine(),
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
    }


def finished_with_request(out, paths, labels, request):
    """How many rows failed, when `out` is a finished table of these inputs written for this `request`; else None.

    None means "not known to be the same": `out` is missing, holds no
    request or another one, or other paths or labels. The caller then
    builds its extractor and decides with :func:`finished_table_rows`.
    """
    from ..storage import EmbeddingTableWriter

    if request is None or not os.path.isfile(out):
        return None
    try:
        earlier, earlier_paths, earlier_labels, n_failed = EmbeddingTableWriter.read_request(out)
    except Exception:  # noqa: BLE001 -- not a readable table: the full check says what is wrong
        return None
    # Through JSON, as the table stored it, so that tuples compare equal to lists.
    if earlier is None or earlier != json.loads(json.dumps(request)):
        return None
    if earlier_paths != list(paths) or earlier_labels != list(labels):
        return None
    return n_failed


def _shown(value):
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 3] + "..."


def _setting_differences(earlier, now, prefix=""):
    """``key: earlier -> now`` for each setting that differs, nested settings by their dotted path."""
    differences = []
    for key in sorted(set(earlier) | set(now)):
        before, after = earlier.get(key), now.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            differences += _setting_differences(before, after, f"{prefix}{key}.")
        else:
            differences.append(f"{prefix}{key}: {_shown(before)} -> {_shown(after)}")
    return differences


def finished_table_rows(out, paths, labels, description):
    """The rows of `out` when it is a finished table of these inputs and settings; None when `out` does not exist.

    Parameters
    ----------
    out : str
        The output file of the run.
    paths, labels : list
        The run's inputs.
    description : dict
        The run's extractor's ``output_description()``.

    Returns
    -------
    pandas.DataFrame or None
        The table's ``path``, ``label`` and ``error`` columns.

    Raises
    ------
    FileExistsError
        When `out` exists and is not a table of these inputs and settings;
        the message says what differs.
    """
    from ..storage import EmbeddingTableWriter

    if not os.path.exists(out):
        return None
    earlier, frame = EmbeddingTableWriter.read_rows(out)
    remedy = "pass if_exists='replace' (--overwrite on the command line) to replace it, or choose another output"
    if earlier is None:
        raise FileExistsError(f"{out!r} exists and is not a table written by embed(); {remedy}")
    # Through JSON, as the table stored it, so that tuples compare equal to lists.
    now = json.loads(json.dumps(description))
    if earlier != now:
        raise FileExistsError(
            f"{out!r} holds embeddings computed with other settings ({'; '.join(_setting_differences(earlier, now))}); "
            f"{remedy}"
        )
    if frame["path"].tolist() != list(paths) or frame["label"].tolist() != list(labels):
        raise FileExistsError(
            f"{out!r} holds embeddings of other images ({len(frame)} rows; the inputs now list {len(paths)} "
            f"images, or other paths or labels); {remedy}"
        )
    return frame

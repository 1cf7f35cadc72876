"""Exported graphs: the one ONNX export of a frozen module, and the disk cache that keeps it.

**Export.** The extractor's embedder (one output) and the fine-tuner's
frozen prefix (one output per stop) are both a function of a uint8 NCHW
batch. Each is exported with the TorchScript-based exporter, batch size left
free, to bytes that the graph engines load from memory
(:func:`export_onnx`). The outputs are named ``out0, out1, ...``
(:func:`output_names`), in the order the module returns them. For
reproducible weights the bytes are kept in the disk cache, so the export
runs once per network and readout (:func:`exported_graph`).

**The cache** cannot serve stale or broken entries:

* Keys are content: the caller describes everything that changes the
  graph's output (architecture, a hash of the weight tensors, layer,
  pooling, preprocessing, engine, precision); the versions of the libraries
  that write and read the graph are added here.
* The name of each entry carries the SHA-256 of its bytes. An entry that was
  truncated or altered is found out on load, exported again, and a warning
  names it; the bytes that were checked are the bytes used.
* Entries are written to a temporary file and renamed into place, so no
  reader ever sees half a file.
* A folder that cannot be written (read-only, a file in the way) is no
  reason to fail: the graph stays in memory, with one warning per folder.
* The checksum proves integrity, not authorship: a graph planted by someone
  else would pass it. So a cache folder that another user owns, or that
  others may write to, is neither read nor written (one warning, the graph
  stays in memory), and the folders are created private (mode 0700). On
  Windows, where folder rights are ACLs, this is not checked.

The folder is ``$SKTRANSFER_CACHE/onnx``, by default
``~/.cache/sktransfer/onnx`` (``~`` is expanded in both).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

CACHE_ENV = "SKTRANSFER_CACHE"

_LOCK = threading.RLock()  # one export at a time in this process; re-entered when an int8 graph exports its float32 one
_WARNED_LOCK = threading.Lock()
_WARNED_FOLDERS = set()


def cache_root() -> Path:
    """The cache folder: ``$SKTRANSFER_CACHE`` or ``~/.cache/sktransfer``, ``~`` expanded."""
    root = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "sktransfer")
    return Path(os.path.expanduser(root))


def graph_folder() -> Path:
    """Where exported ONNX graphs are kept."""
    return cache_root() / "onnx"


def _library_versions():
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("sktransfer", "torch", "onnx", "onnxruntime"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    import torch

    found["torch"] = torch.__version__  # the running one, also from a source tree
    return found


def graph_key(description: Mapping) -> str:
    """A file-name-safe key for a graph described by a JSON-able dict."""
    full = {"graph": description, "versions": _library_versions()}
    text = json.dumps(full, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _entry_name(key, data):
    return f"{key}-{hashlib.sha256(data).hexdigest()}.onnx"


def _warn_once(folder, message):
    with _WARNED_LOCK:
        if str(folder) in _WARNED_FOLDERS:
            return
        _WARNED_FOLDERS.add(str(folder))
    warnings.warn(message, UserWarning, stacklevel=5)


def _warn_unwritable(folder, exc):
    _warn_once(
        folder,
        f"cannot use the graph cache folder {str(folder)!r} ({exc}); exported graphs are kept in "
        f"memory instead. Set {CACHE_ENV} to a writable folder to cache them on disk.",
    )


def _untrusted(folder):
    """Why ``folder`` must not hold graphs this process loads (another user's, or writable by others), or None."""
    if not hasattr(os, "getuid"):
        return None  # Windows: rights are ACLs, not mode bits
    try:
        info = folder.stat()
    except OSError:
        return None  # absent: created private when a graph is stored; unusable: _store warns
    if info.st_uid != os.getuid():
        return f"it is owned by another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"others can write to it (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _usable(folder):
    """Whether graphs may be read from and written to ``folder`` (warns once when not)."""
    for checked in (folder.parent, folder):
        reason = _untrusted(checked)
        if reason is not None:
            _warn_once(
                folder,
                f"the graph cache folder {str(checked)!r} is not used: {reason}, so a graph planted there "
                f"would be loaded. Exported graphs are kept in memory; set {CACHE_ENV} to a folder only "
                "you can write to cache them on disk.",
            )
            return False
    return True


def _read_valid(folder, key):
    """The bytes of a valid entry for ``key``, or None; invalid entries are removed."""
    try:
        entries = sorted(folder.glob(f"{key}-*.onnx"))
    except OSError:
        return None
    for path in entries:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # removed by another process meanwhile, or unreadable
        if path.name == _entry_name(key, data):
            return data
        warnings.warn(
            f"the cached graph {str(path)!r} is corrupt (its bytes do not match the checksum in "
            "its name, e.g. a truncated write); exporting it again",
            UserWarning,
            stacklevel=4,
        )
        try:
            path.unlink()
        except OSError:
            pass
    return None


def _store(folder, key, data):
    """Write ``data`` atomically as the entry for ``key``; False when the folder is unusable."""
    tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        # Private: only this user may plant or replace a graph here.
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / _entry_name(key, data))
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        _warn_unwritable(folder, exc)
        return False
    return True


def cached_graph(key: str | None, export: Callable[[], bytes]) -> bytes:
    """The graph bytes for ``key``: a verified cache entry, or ``export()``'s (then stored).

    Parameters
    ----------
    key : str or None
        From :func:`graph_key`; None keeps the graph in memory only (for
        networks whose weights cannot be reproduced).
    export : callable
        Returns the serialised graph as bytes.

    Returns
    -------
    bytes
    """
    if key is None:
        return export()
    folder = graph_folder()
    if not _usable(folder):
        return export()
    with _LOCK:
        data = _read_valid(folder, key)
        if data is not None:
            return data
        data = export()
        _store(folder, key, data)
    return data


# ------------------------------------------------------------------ export

#: The ONNX operator set the graphs are exported at.
OPSET = 17


class ExportError(RuntimeError):
    """The module could not be exported to ONNX (an operator or control flow the exporter does not support)."""


def output_names(n_outputs: int) -> list[str]:
    """The names of an exported graph's outputs: ``out0, out1, ...``.

    Examples
    --------
    >>> output_names(2)
    ['out0', 'out1']
    """
    return [f"out{i}" for i in range(n_outputs)]


def export_onnx(module: nn.Module, crop: int, n_outputs: int = 1) -> bytes:
    """``module`` as a serialised ONNX graph (bytes), batch size left free.

    Parameters
    ----------
    module : torch.nn.Module
        uint8 images of shape (batch, 3, crop, crop) -> one tensor, or a
        tuple of ``n_outputs`` tensors, each with the batch first. Exported
        as it is, in eval mode on the CPU (it is moved there and switched to
        eval; the caller restores its mode and device if it needs them).
    crop : int
        Height and width of the example input.
    n_outputs : int, default=1
        How many tensors the module returns, named by :func:`output_names`.

    Returns
    -------
    bytes

    Raises
    ------
    ExportError
        When the exporter cannot export the module, with its first line.
    """
    import torch

    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    names = output_names(n_outputs)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Tracing warns about shape-dependent Python code (e.g. TF 'same'
        # padding computed from the input size); the input size is fixed here.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module.cpu().eval(),
                (example,),
                buffer,
                input_names=["images"],
                output_names=names,
                dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in names}},
                opset_version=OPSET,
                dynamo=False,
            )
        except Exception as exc:  # the exporter raises many types (SymbolicValueError, RuntimeError...)
            text = str(exc).strip().splitlines()
            raise ExportError(f"{type(exc).__name__}: {text[0] if text else ''}") from exc
    return buffer.getvalue()


def exported_graph(module: nn.Module, crop: int, description: Mapping | None, n_outputs: int = 1) -> bytes:
    """The float32 ONNX graph of ``module``: from the disk cache, or exported now (and stored).

    Shared by both graph engines and by int8 calibration, which all read
    the same exported graph (so no engine is part of its key).

    Parameters
    ----------
    module, crop, n_outputs :
        As for :func:`export_onnx`.
    description : mapping or None
        What determines the module's outputs (see
        :func:`~sktransfer.runtime.describe_output`); None keeps the graph
        in memory only (weights that cannot be reproduced).

    Returns
    -------
    bytes
    """
    key = None
    if description is not None:
        key = graph_key({**description, "format": "onnx", "opset": OPSET, "outputs": output_names(n_outputs)})
    return cached_graph(key, lambda: export_onnx(module, crop, n_outputs))

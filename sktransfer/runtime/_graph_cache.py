"""A disk cache of exported graphs that cannot serve stale or broken entries.

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

The folder is ``$SKTRANSFER_CACHE/onnx``, by default
``~/.cache/sktransfer/onnx`` (``~`` is expanded in both).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from pathlib import Path

CACHE_ENV = "SKTRANSFER_CACHE"

_LOCK = threading.RLock()  # one export at a time in this process; re-entered when an int8 graph exports its float32 one
_WARNED_LOCK = threading.Lock()
_WARNED_FOLDERS = set()


def cache_root():
    """The cache folder: ``$SKTRANSFER_CACHE`` or ``~/.cache/sktransfer``, ``~`` expanded."""
    root = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "sktransfer")
    return Path(os.path.expanduser(root))


def graph_folder():
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


def graph_key(description):
    """A file-name-safe key for a graph described by a JSON-able dict."""
    full = {"graph": description, "versions": _library_versions()}
    text = json.dumps(full, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _entry_name(key, data):
    return f"{key}-{hashlib.sha256(data).hexdigest()}.onnx"


def _warn_unwritable(folder, exc):
    with _WARNED_LOCK:
        if str(folder) in _WARNED_FOLDERS:
            return
        _WARNED_FOLDERS.add(str(folder))
    warnings.warn(
        f"cannot use the graph cache folder {str(folder)!r} ({exc}); exported graphs are kept in "
        f"memory instead. Set {CACHE_ENV} to a writable folder to cache them on disk.",
        UserWarning,
        stacklevel=4,
    )


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
        folder.mkdir(parents=True, exist_ok=True)
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


def cached_graph(key, export):
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
    with _LOCK:
        data = _read_valid(folder, key)
        if data is not None:
            return data
        data = export()
        _store(folder, key, data)
    return data

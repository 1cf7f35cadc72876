"""Resolve ``weights=`` into a built network with the right preprocessing.

``weights`` may be ``"DEFAULT"``, a torchvision weights enum name such as
``"IMAGENET1K_V2"`` (or the enum member itself), ``None`` for random
initialisation, or the path of a local state-dict file. Named weights go
through torchvision's normal download-and-cache path (``torch.hub``), so users
with internet get them as usual; a local file is read with
``torch.load(..., weights_only=True)`` and must fit the architecture.

Any existing file is a weights file, whatever its extension; ``~`` is
expanded. Caches are keyed by :func:`weights_identity`, which names files by
the SHA-256 of their bytes: a file rewritten in place with the same size and
modification time is new weights, not a cache hit.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

from .._typing import StrPath
from .._weight_files import (
    SEEDED_RANDOM_MODELS,
    expand_weights_path,
    file_signature,
    is_weights_path,
    packaged_weights_path,
)
from ._base import Preprocessing
from ._hub import WeightsNotAvailableError, download_alternatives
from ._timm_names import cached_timm_weights, is_timm_name

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

#: What ``weights=`` takes: a weights name ("DEFAULT", "IMAGENET1K_V2"...),
#: a local state-dict file, a torchvision weights enum member, or None
#: (random initialisation). typing.Union keeps the torchvision member a
#: string at run time, so that naming it does not import torchvision.
Weights = Union[str, os.PathLike, "WeightsEnum", None]

# Auxiliary classifiers exist only in training mode of GoogLeNet/Inception;
# we build without them, so their keys in a checkpoint are expected extras.
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


def preprocessing_from_enum(weights_enum: WeightsEnum) -> Preprocessing:
    """Read resize, crop, interpolation, mean and std from a torchvision weights enum."""
    t = weights_enum.transforms()
    resize = t.resize_size[0] if isinstance(t.resize_size, (list, tuple)) else t.resize_size
    crop = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
    return Preprocessing(
        resize_size=int(resize),
        crop_size=int(crop),
        interpolation=str(t.interpolation.value),
        mean=tuple(float(v) for v in t.mean),
        std=tuple(float(v) for v in t.std),
    )


def torchvision_weights_enum(arch: str, weights: Weights) -> WeightsEnum:
    """The weights enum member for ``weights`` (a name or a member) of ``arch``."""
    from torchvision.models import get_model_weights

    enum_cls = get_model_weights(arch)
    if isinstance(weights, enum_cls):
        return weights
    if weights == "DEFAULT":
        return enum_cls.DEFAULT
    name = str(weights).split(".")[-1]
    try:
        return enum_cls[name]
    except KeyError:
        options = ["DEFAULT"] + [w.name for w in enum_cls]
        raise ValueError(
            f"weights={weights!r} is not known for {arch!r}: use one of {options}, "
            "None (random initialisation) or the path of a local state-dict file" + _no_such_file(weights)
        ) from None


def _no_such_file(weights):
    """A hint for a string that may have been meant as a file name."""
    if isinstance(weights, str) and "." in weights and not weights.split(".")[-1].isupper():
        return f" (no file {os.path.abspath(expand_weights_path(weights))!r} exists)"
    return ""


def read_state_dict(path: StrPath) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` safely (``weights_only=True``)."""
    given = os.fspath(path)
    path = Path(expand_weights_path(path))
    if not path.is_file():
        origin = f" (weights={given!r})" if given != str(path) else ""
        raise FileNotFoundError(f"weights file not found: {str(path)!r}{origin}")
    if path.stat().st_size == 0:
        raise ValueError(f"weights file {str(path)!r} is empty (0 bytes): expected a state dict saved by torch.save")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise ValueError(f"cannot read weights file {str(path)!r} as safetensors: {_describe(exc)}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"cannot read weights file {str(path)!r} as a state dict: {_describe(exc)}") from exc
    return _unwrap_state_dict(obj, f"weights file {str(path)!r}")


def load_state_dict_bytes(data: bytes | bytearray, *, source: str) -> dict[str, torch.Tensor]:
    """A state dict from ``torch.save`` bytes, read with ``weights_only=True``.

    Tensors, containers and numbers only: bytes that carry any other pickled
    object (a payload calling ``os.system``...) raise instead of running.
    """
    import io

    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValueError(f"{source} holds no state dict bytes")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read {source} as a state dict of tensors: {_describe(exc)}") from exc
    return _unwrap_state_dict(obj, source)


def _describe(exc):
    # Some readers raise with an empty message (EOFError on a short file).
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__} (the data ends early)"


def _unwrap_state_dict(obj, source):
    # Training checkpoints often wrap the state dict.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source} does not hold a state dict of tensors")
    # Drop the prefix that DataParallel / torch.compile add.
    for prefix in ("module.", "_orig_mod."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def load_state_dict_checked(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str, ignore_prefixes: Iterable[str] = ()
) -> nn.Module:
    """Load ``state_dict`` into ``module``; a mismatch is an error listing the keys."""
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(tuple(ignore_prefixes))}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:

        def _show(keys):
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")

        lines = [f"{source} does not fit the architecture {type(module).__name__}:"]
        if missing:
            lines.append(f"  missing keys: {_show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {_show(unexpected)}")
        if wrong_shape:
            lines.append(f"  wrong shapes: {_show(wrong_shape)}")
        raise ValueError("\n".join(lines))
    module.load_state_dict(state_dict, strict=True)
    return module


def _architecture_kwargs(arch, weights):
    """Builder arguments that make ``arch`` fit ``weights`` (as torchvision's builders set them)."""
    kwargs = {}
    if arch in ("googlenet", "inception_v3"):
        # No auxiliary heads (inference and transfer never use them); the TF
        # ported weights expect transform_input whenever weights are loaded.
        kwargs = {"aux_logits": False, "init_weights": weights is None}
        if weights is not None:
            kwargs["transform_input"] = True
    if weights is not None and not is_weights_path(weights):
        meta = torchvision_weights_enum(arch, weights).meta
        kwargs["num_classes"] = len(meta["categories"])
        if arch.startswith("vit_"):
            kwargs["image_size"] = meta["min_size"][0]
        elif arch.startswith("maxvit"):
            kwargs["input_size"] = meta["min_size"]
    return kwargs


def torchvision_weights_unavailable(arch: str, enum: WeightsEnum, exc: BaseException) -> Exception:
    """The error for torchvision weights neither in the torch hub cache nor downloadable, saying what to do."""
    import torch.hub

    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    return WeightsNotAvailableError(
        f"the torchvision weights {enum} of {arch!r} are not in the torch hub cache ({folder!r}) and "
        f"downloading them failed ({type(exc).__name__}: {reason}). Download them once, with network access:\n"
        f"    python -c \"import torchvision; torchvision.models.get_model('{arch}', weights='{enum.name}')\"\n"
        "(TORCH_HOME must name the same folder when they are used), " + download_alternatives(arch)
    )


def build_torchvision(arch: str, weights: Weights, *, load: bool = True) -> tuple[nn.Module, Preprocessing]:
    """Build torchvision model ``arch`` for ``weights``; return (model, preprocessing).

    With ``load=False`` the network has the architecture those weights need
    (class count, input size, input transform) and random parameters: the
    shape a saved state dict is loaded into when an estimator is unpickled.
    """
    from torchvision.models import get_model

    model = get_model(arch, weights=None, **_architecture_kwargs(arch, weights))
    if weights is None or is_weights_path(weights):
        pre = preprocessing_from_enum(torchvision_weights_enum(arch, "DEFAULT"))
        if load and weights is not None:
            source = f"weights file {expand_weights_path(weights)!r}"
            load_state_dict_checked(model, read_state_dict(weights), source=source, ignore_prefixes=_AUX_PREFIXES)
        return model, pre
    enum = torchvision_weights_enum(arch, weights)
    if load:
        # torchvision's own download-and-cache path (torch.hub), checked
        # against the hash in the file name.
        try:
            state = enum.get_state_dict(progress=True, check_hash=True)
        except OSError as exc:  # URLError without network, a failed connection, a refused write
            raise torchvision_weights_unavailable(arch, enum, exc) from exc
        load_state_dict_checked(model, state, source=f"weights {enum}", ignore_prefixes=_AUX_PREFIXES)
    return model, preprocessing_from_enum(enum)


# ---------------------------------------------------------------- identities

_DIGEST_LOCK = threading.Lock()
_FILE_DIGESTS = OrderedDict()  # stat signature -> sha256 hex, most recent last
_FILE_DIGESTS_MAX = 64


def file_digest(path: StrPath) -> str:
    """SHA-256 of a file's bytes, computed once per version of the file.

    The memo is keyed by the file's stat signature including the inode and
    the change time (``st_ctime_ns``), which every write updates and which,
    unlike the modification time, cannot be set back by the writer.
    """
    signature = file_signature(path)
    path = signature[0]
    with _DIGEST_LOCK:
        digest = _FILE_DIGESTS.get(signature)
        if digest is not None:
            _FILE_DIGESTS.move_to_end(signature)
            return digest
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _DIGEST_LOCK:
        _FILE_DIGESTS[signature] = digest
        while len(_FILE_DIGESTS) > _FILE_DIGESTS_MAX:
            _FILE_DIGESTS.popitem(last=False)
    return digest


def state_dict_digest(module: nn.Module) -> str:
    """SHA-256 of a module's state dict: names, dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weights_identity(model: Any, weights: Weights) -> str | None:
    """A hashable string naming reproducible weights, or None.

    Local files are named by the SHA-256 of their bytes, torchvision weights
    by their download URL (whose file name carries the hash of the file),
    the default EfficientNet-Lite0 weights by the hash of the packaged file.
    None for what cannot be reproduced: random initialisation and modules
    passed in.

    Parameters
    ----------
    model : str or object
        The ``model`` parameter of an estimator.
    weights : str, path, weights enum or None
        Its ``weights`` parameter.

    Returns
    -------
    str or None

    Examples
    --------
    >>> from sktransfer.backbones._weights import weights_identity
    >>> weights_identity("tiny_convnet", None)
    'tiny_convnet|seed=0'
    >>> weights_identity("resnet18", None) is None
    True
    """
    if not isinstance(model, str):
        return None
    name = model.lower()
    if name in SEEDED_RANDOM_MODELS and weights is None:
        return f"{name}|seed=0"  # make_tiny_backbone() is seeded: reproducible
    if weights is None:
        return None
    if is_weights_path(weights):
        if not os.path.isfile(expand_weights_path(weights)):
            return None  # building will say the file is missing
        return f"{name}|sha256={file_digest(weights)}"
    if is_timm_name(model):
        found = cached_timm_weights(model, weights)  # None: not cached, building reports it
        if found is None:
            return None
        sha256 = found.blob_sha256 or file_digest(found.path)
        return f"{model}|hf-hub:{found.repo_id}@{found.commit}/{found.filename}|sha256={sha256}"
    packaged = packaged_weights_path(name, weights)
    if packaged is not None:
        return f"{name}|sha256={file_digest(packaged)}"
    try:
        url = torchvision_weights_enum(name, weights).url
    except (ValueError, KeyError):
        return None  # not a known name: building reports it
    return f"{name}|url={url}"

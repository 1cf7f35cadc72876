"""Resolve ``weights=`` into a built network with the right preprocessing.

``weights`` may be ``"DEFAULT"``, a torchvision weights enum name such as
``"IMAGENET1K_V2"`` (or the enum member itself), ``None`` for random
initialisation, or the path of a local state-dict file. Named weights go
through torchvision's normal download-and-cache path (``torch.hub``), so users
with internet get them as usual; a local file is read with
``torch.load(..., weights_only=True)`` and must fit the architecture.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ._base import Preprocessing

# Auxiliary classifiers exist only in training mode of GoogLeNet/Inception;
# we build without them, so their keys in a checkpoint are expected extras.
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


def is_weights_path(weights):
    """True when ``weights`` names a local file rather than pretrained weights."""
    if isinstance(weights, os.PathLike):
        return True
    if isinstance(weights, str):
        return weights not in ("DEFAULT",) and (
            os.sep in weights or "/" in weights or weights.endswith((".pth", ".pt", ".bin", ".ckpt"))
        )
    return False


def preprocessing_from_enum(weights_enum):
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


def torchvision_weights_enum(arch, weights):
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
            "None (random initialisation) or the path of a local state-dict file"
        ) from None


def read_state_dict(path):
    """Load a state dict from ``path`` safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"cannot read weights file {str(path)!r} as a state dict: {exc}") from exc
    # Training checkpoints often wrap the state dict.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    # Drop the prefix that DataParallel / torch.compile add.
    for prefix in ("module.", "_orig_mod."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def load_state_dict_checked(module, state_dict, *, source, ignore_prefixes=()):
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

        lines = [f"weights file {source!r} does not fit the architecture {type(module).__name__}:"]
        if missing:
            lines.append(f"  missing keys: {_show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {_show(unexpected)}")
        if wrong_shape:
            lines.append(f"  wrong shapes: {_show(wrong_shape)}")
        raise ValueError("\n".join(lines))
    module.load_state_dict(state_dict, strict=True)
    return module


def build_torchvision(arch, weights):
    """Build torchvision model ``arch`` with ``weights``; return (model, preprocessing)."""
    from torchvision.models import get_model

    kwargs = {}
    if arch in ("googlenet", "inception_v3"):
        # No auxiliary heads (inference and transfer never use them); the TF
        # ported weights expect transform_input whenever weights are loaded.
        kwargs = {"aux_logits": False, "init_weights": weights is None}
        if weights is not None:
            kwargs["transform_input"] = True
    default_pre = preprocessing_from_enum(torchvision_weights_enum(arch, "DEFAULT"))
    if weights is None:
        return get_model(arch, weights=None, **kwargs), default_pre
    if is_weights_path(weights):
        if arch in ("googlenet", "inception_v3"):
            kwargs["init_weights"] = False
        model = get_model(arch, weights=None, **kwargs)
        load_state_dict_checked(
            model, read_state_dict(weights), source=str(weights), ignore_prefixes=_AUX_PREFIXES
        )
        return model, default_pre
    enum = torchvision_weights_enum(arch, weights)
    kwargs.pop("init_weights", None)
    # The normal torchvision path: downloads into the torch.hub cache once.
    return get_model(arch, weights=enum, **kwargs), preprocessing_from_enum(enum)


def weights_identity(model, weights):
    """A string naming reproducible weights, or None (random init, user modules)."""
    import torchvision

    if model == "tiny_convnet" and weights is None:
        return "tiny_convnet|seed=0"  # make_tiny_backbone() is seeded: reproducible
    if not isinstance(model, str) or weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        st = os.stat(weights)
        return f"{model}|file={os.path.abspath(weights)}|{st.st_size}|{st.st_mtime_ns}"
    return f"{model}|weights={weights}|torchvision={torchvision.__version__}"

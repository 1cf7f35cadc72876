"""timm models by name: ``"timm/<name>"`` and ``"hf-hub:<org>/<repo>"``.

The name gives the architecture and the pretrained configuration
(``timm.models.get_pretrained_cfg`` for ``timm/`` names, the repository's
``config.json`` for ``hf-hub:`` ids, read by timm's own
``load_model_config_from_path``); the weights come from the Hugging Face
cache (:mod:`._hub`) or a local file, and are loaded by timm's own
``create_model(..., pretrained=True)``, which applies the architecture's
checkpoint filter (e.g. resampling a ViT's position embedding to another
input size) and loads strictly.

The preprocessing is timm's eval transform for the pretrained
configuration (``timm.data.resolve_data_config`` then ``create_transform``):
resize to ``floor(size / crop_pct)`` with the configured interpolation as
the configured ``crop_mode`` says (``"center"``: the shorter side;
``"squash"``: both sides; ``"border"``: the longer side, padded with the
mean pixel), centre-crop ``size``, normalise with the configured mean and
std.

Input size: a model trained on large fixed inputs (DINOv2's 518 px) is
built for 224 px by default (:data:`DEFAULT_LARGE_INPUT`), its position
embedding resampled by timm; ``input_size=`` sets another size.
"""

from __future__ import annotations

import math
import os
from typing import Any

from torch import nn

from ..image._transforms import CROP_MODES
from ._base import Preprocessing
from ._hub import HUB_WEIGHTS_FILES, find_hub_file
from ._timm_names import TimmSource, timm_source

#: Fixed input sizes above this many pixels are replaced by DEFAULT_LARGE_INPUT
#: unless ``input_size`` is given: 518 px costs 5.3x the compute of 224 px.
LARGE_INPUT = 384
DEFAULT_LARGE_INPUT = 224

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _input_side(source: TimmSource, input_size: int | None) -> tuple[int, dict]:
    """The square input side to build for, and the builder arguments that set it."""
    cfg = source.pretrained_cfg
    side = int(cfg.get("input_size", (3, 224, 224))[-1])
    fixed = bool(cfg.get("fixed_input_size", False))
    if input_size is None:
        if not (fixed and side > LARGE_INPUT):
            return side, {}
        input_size = DEFAULT_LARGE_INPUT
    input_size = int(input_size)
    if input_size == side:
        return side, {}
    if fixed:
        # Only architectures built for an input size (ViTs: img_size) can change it.
        return input_size, {"img_size": input_size}
    return input_size, {}


def timm_preprocessing(source: TimmSource, side: int) -> Preprocessing:
    """timm's eval transform for ``source``'s pretrained configuration at ``side`` pixels."""
    from timm.data import resolve_data_config

    data = resolve_data_config(pretrained_cfg=source.pretrained_cfg)
    crop_mode = data.get("crop_mode") or "center"
    if crop_mode not in CROP_MODES:
        raise ValueError(
            f"{source.model}: its pretrained configuration has crop_mode={crop_mode!r}; "
            f"timm's eval transform knows {list(CROP_MODES)}"
        )
    interpolation = data.get("interpolation", "bicubic")
    if interpolation not in _INTERPOLATIONS:
        interpolation = "bicubic"
    return Preprocessing(
        resize_size=int(math.floor(side / float(data.get("crop_pct", 0.875)))),
        crop_size=int(side),
        interpolation=interpolation,
        mean=tuple(float(v) for v in data["mean"]),
        std=tuple(float(v) for v in data["std"]),
        crop_mode=crop_mode,
    )


def _create(source, size_args, *, file=None):
    import timm

    kwargs = {**source.model_args, **size_args}
    cfg = dict(source.pretrained_cfg)
    kwargs.setdefault("num_classes", cfg.get("num_classes", 1000) or 0)
    if file is None:
        return timm.create_model(source.architecture, pretrained=False, pretrained_cfg=cfg or None, **kwargs)
    # source="" makes timm load the file, not the hub id of the configuration.
    overlay = {"file": os.fspath(file), "source": "", "url": None, "hf_hub_id": None, "state_dict": None}
    return timm.create_model(
        source.architecture, pretrained=True, pretrained_cfg=cfg or None, pretrained_cfg_overlay=overlay, **kwargs
    )


def _create_from_file(source, size_args, path, origin):
    """timm's own loading of a weights file; a file that does not fit lists its keys."""
    from ._weights import load_state_dict_checked, read_state_dict

    try:
        return _create(source, size_args, file=path)
    except RuntimeError as exc:
        if "state_dict" not in str(exc):
            raise
        net = _create(source, size_args)
        load_state_dict_checked(net, read_state_dict(path), source=origin)  # raises, listing the keys
        raise ValueError(f"{origin} does not fit {source.model}: {exc}") from exc


def build_timm(
    model: str, weights: Any, *, load: bool = True, input_size: int | None = None
) -> tuple[nn.Module, Preprocessing, TimmSource]:
    """Build timm model ``model`` with ``weights``; return (network, preprocessing, source).

    Parameters
    ----------
    model : str
        ``"timm/<name>[@revision]"`` or ``"hf-hub:<org>/<repo>[@revision]"``.
    weights : {"DEFAULT"}, path or None
        The hub weights (cache first), a local ``.safetensors``/``.pth``
        file fitting the architecture, or None (random initialisation).
    load : bool, default=True
        False builds the architecture those weights need without reading them.
    input_size : int or None
        Square input side; None: the pretrained configuration's, or 224 for
        fixed inputs larger than 384 px.
    """
    from ._weights import expand_weights_path, is_weights_path

    source = timm_source(model)
    side, size_args = _input_side(source, input_size)
    try:
        if weights is None or not load:
            net = _create(source, size_args)
        elif is_weights_path(weights):
            path = expand_weights_path(weights)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"weights file not found: {path!r} (weights={weights!r})")
            net = _create_from_file(source, size_args, path, f"weights file {path!r}")
        elif weights == "DEFAULT":
            if source.repo_id is None:
                raise ValueError(
                    f"{model!r} has no weights on the Hugging Face hub: pass weights= a local file, or None"
                )
            filename = source.pretrained_cfg.get("hf_hub_filename")
            filenames = (filename,) if filename else HUB_WEIGHTS_FILES
            hub_file = find_hub_file(model, source.repo_id, filenames, source.revision)
            net = _create_from_file(
                source, size_args, hub_file.path, f"hf-hub:{hub_file.repo_id}@{hub_file.commit}/{hub_file.filename}"
            )
        else:
            raise ValueError(
                f"weights={weights!r} is not known for {model!r}: use 'DEFAULT' (the Hugging Face hub weights, "
                "from the local cache first), None (random initialisation) or the path of a local "
                ".safetensors/.pth file"
            )
    except TypeError as exc:
        if "img_size" in size_args:
            raise ValueError(
                f"{model} has a fixed input size of {source.pretrained_cfg['input_size'][-1]} px and its "
                f"architecture cannot be built for input_size={side}: leave input_size=None"
            ) from exc
        raise
    return net.eval(), timm_preprocessing(source, side), source

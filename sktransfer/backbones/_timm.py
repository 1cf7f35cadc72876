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
resize the shorter side to ``floor(size / crop_pct)`` with the configured
interpolation, centre-crop ``size``, normalise with the configured mean and
std.

Input size: a model trained on large fixed inputs (DINOv2's 518 px) is
built for 224 px by default (:data:`DEFAULT_LARGE_INPUT`), its position
embedding resampled by timm; ``input_size=`` sets another size.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._base import Preprocessing
from ._hub import HUB_WEIGHTS_FILES, find_hub_file

TIMM_PREFIX = "timm/"
HF_HUB_PREFIX = "hf-hub:"

#: Fixed input sizes above this many pixels are replaced by DEFAULT_LARGE_INPUT
#: unless ``input_size`` is given: 518 px costs 5.3x the compute of 224 px.
LARGE_INPUT = 384
DEFAULT_LARGE_INPUT = 224

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def is_timm_name(model: Any) -> bool:
    """Whether ``model`` is a ``"timm/<name>"`` or ``"hf-hub:<org>/<repo>"`` string."""
    return isinstance(model, str) and (model.startswith(TIMM_PREFIX) or model.lower().startswith(HF_HUB_PREFIX))


@dataclass(frozen=True)
class TimmSource:
    """What a timm model name resolves to."""

    model: str
    architecture: str
    repo_id: str | None
    revision: str | None
    pretrained_cfg: dict = field(hash=False)
    model_args: dict = field(hash=False)


def _split_revision(ref):
    repo, _, revision = ref.partition("@")
    return repo, (revision or None)


def suggest_timm_names(name: str, n: int = 6) -> list[str]:
    """``timm/`` names of pretrained models close to ``name``, for "unknown model" messages.

    Close spellings of the architecture (``difflib``), then the pretrained
    names holding the most of ``name``'s words (``"dinov2_vits14"`` ->
    the DINOv2 ViTs, ``"openai/clip-vit-base-patch32"`` -> OpenAI's CLIP towers).
    """
    import re

    import timm

    base = name.split(":")[-1].split("/")[-1].split(".")[0].replace("-", "_").lower()
    close = difflib.get_close_matches(base, timm.list_models(), n=n, cutoff=0.75)
    words = {w for w in re.split(r"[^a-z0-9]+", name.lower()) if len(w) >= 4 and w not in ("timm", "model")}
    scored = []
    if words:
        for candidate in timm.list_pretrained():
            score = sum(w in candidate for w in words)
            if score:
                scored.append((-score, len(candidate), candidate))
        best = min(scored)[0] if scored else 0
        close += [c for s, _, c in sorted(scored) if s == best]
    seen = []
    for c in close:
        if c not in seen:
            seen.append(c)
    return [TIMM_PREFIX + c for c in seen[:n]]


def timm_source(model: str) -> TimmSource:
    """Resolve a ``timm/`` name or ``hf-hub:`` id to its architecture, configuration and repository.

    A ``timm/`` name without a pretrained tag takes timm's default tag (as
    ``timm.create_model(name, pretrained=True)`` does); an ``hf-hub:`` id
    reads ``config.json`` from the repository (cache first, see
    :func:`._hub.find_hub_file`).
    """
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag
    from timm.models._hub import load_model_config_from_path

    if model.lower().startswith(HF_HUB_PREFIX):
        repo_id, revision = _split_revision(model[len(HF_HUB_PREFIX) :])
        config = find_hub_file(model, repo_id, ("config.json",), revision)
        cfg, architecture, model_args = load_model_config_from_path(os.path.dirname(config.path))
        cfg = {k: v for k, v in cfg.items() if k not in ("file", "source")}
        cfg["hf_hub_id"] = repo_id
        return TimmSource(model, architecture, repo_id, revision, cfg, dict(model_args))
    name, revision = _split_revision(model[len(TIMM_PREFIX) :])
    architecture, tag = split_model_name_tag(name)
    if architecture not in timm.list_models():
        close = suggest_timm_names(architecture)
        hint = f"; similar: {close}" if close else ""
        raise ValueError(f"unknown timm model {model!r}: see timm.list_models(){hint}")
    cfg = get_pretrained_cfg(name)
    if cfg is None and tag:
        tags = timm.list_pretrained(architecture + ".*")
        raise ValueError(f"timm has no pretrained tag {tag!r} for {architecture!r}; its tags: {tags}")
    cfg = cfg.to_dict() if cfg is not None else {}
    return TimmSource(model, architecture, cfg.get("hf_hub_id"), revision, cfg, {})


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
    crop_mode = data.get("crop_mode", "center")
    if crop_mode != "center":
        warnings.warn(
            f"{source.model}: timm's eval transform for it uses crop_mode={crop_mode!r}; sktransfer resizes the "
            "shorter side and centre-crops (crop_mode='center'), so embeddings differ slightly from timm's.",
            UserWarning,
            stacklevel=4,
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
            net = _create_from_file(source, size_args, hub_file.path, f"{hub_file.identity.split('|')[0]}")
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


def list_timm_backbones(filter: str = "") -> list[str]:
    """``timm/`` names of timm's pretrained models matching the wildcard ``filter``."""
    import timm

    pattern = filter[len(TIMM_PREFIX) :] if filter.startswith(TIMM_PREFIX) else filter
    return [TIMM_PREFIX + name for name in timm.list_pretrained(pattern or "")]


def timm_weights_identity(model: str, weights: Any) -> str | None:
    """The identity of a timm model's hub weights in the cache (repository, commit, SHA-256), or None.

    None when the weights are not cached (building them reports why) or
    when the name is unknown. Local files and random initialisation are
    named by :func:`._weights.weights_identity` itself.
    """
    from ._hub import cached_file

    if weights != "DEFAULT":
        return None
    try:
        source = timm_source(model)
    except (ValueError, OSError):
        return None
    if source.repo_id is None:
        return None
    filename = source.pretrained_cfg.get("hf_hub_filename")
    for name in (filename,) if filename else HUB_WEIGHTS_FILES:
        found = cached_file(source.repo_id, name, source.revision)
        if found is not None:
            return f"{model}|{found.identity}"
    return None

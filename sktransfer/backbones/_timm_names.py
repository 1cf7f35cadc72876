"""timm model names: ``"timm/<name>"`` and ``"hf-hub:<org>/<repo>"``, resolved without building anything.

A ``timm/`` name gives the architecture and pretrained configuration from
timm's registry (``timm.models.get_pretrained_cfg``, timm's default tag when
the name has none) and the hub repository of its weights; an ``hf-hub:`` id
reads the repository's ``config.json`` (from the cache first, see
:mod:`._hub`) with timm's own ``load_model_config_from_path``. A trailing
``@<revision>`` pins a branch, tag or commit of the repository.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any

from ._hub import HUB_WEIGHTS_FILES, HubFile, cached_file, find_hub_file

TIMM_PREFIX = "timm/"
HF_HUB_PREFIX = "hf-hub:"


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
        # The names sharing the most words first (a hub id's words say more than its spelling).
        close = [c for s, _, c in sorted(scored) if s == best] + close
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
        try:
            cfg, architecture, model_args = load_model_config_from_path(os.path.dirname(config.path))
        except (KeyError, TypeError, ValueError) as exc:  # a transformers or open_clip config.json
            close = suggest_timm_names(model)
            hint = f"; timm models with similar names: {close}" if close else ""
            raise ValueError(
                f"{model!r} is not a repository timm can load: its config.json names no timm architecture "
                f"({type(exc).__name__}: {exc}){hint}"
            ) from exc
        cfg = {k: v for k, v in cfg.items() if k not in ("file", "source")}
        cfg["hf_hub_id"] = repo_id
        return TimmSource(model, architecture, repo_id, revision, cfg, dict(model_args))
    name, revision = _split_revision(model[len(TIMM_PREFIX) :])
    architecture, tag = split_model_name_tag(name)
    if not timm.is_model(architecture):
        close = suggest_timm_names(architecture)
        hint = f"; similar: {close}" if close else ""
        raise ValueError(f"unknown timm model {model!r}: see timm.list_models(){hint}")
    cfg = get_pretrained_cfg(name)
    if cfg is None and tag:
        tags = timm.list_pretrained(architecture + ".*")
        raise ValueError(f"timm has no pretrained tag {tag!r} for {architecture!r}; its tags: {tags}")
    cfg = cfg.to_dict() if cfg is not None else {}
    return TimmSource(model, architecture, cfg.get("hf_hub_id"), revision, cfg, {})


def list_timm_backbones(filter: str = "") -> list[str]:
    """``timm/`` names of timm's pretrained models matching the wildcard ``filter``."""
    import timm

    pattern = filter[len(TIMM_PREFIX) :] if filter.startswith(TIMM_PREFIX) else filter
    return [TIMM_PREFIX + name for name in timm.list_pretrained(pattern or "")]


def cached_timm_weights(model: str, weights: Any) -> HubFile | None:
    """The cached hub weights file of a timm model for ``weights="DEFAULT"``, or None.

    None when the weights are not cached (building them reports why) or
    when the name is unknown. Local files and random initialisation are
    named by :func:`._weights.weights_identity` itself.
    """
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
            return found
    return None

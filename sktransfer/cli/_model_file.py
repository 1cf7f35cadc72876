"""Saving a fitted model with skops, and loading one without running code from the file.

``skops.io.load`` refuses every type it does not trust by default (it
trusts scikit-learn's estimators and numpy's types). The types ``fit``
writes are sktransfer's own estimators, whose state is data (a network
saved as a recipe, or as tensors read with ``torch.load(weights_only=True)``;
a fine-tuner's settings, classes and history as plain values); they are trusted here by name, and any
other type in a file is refused unless the user names it with ``--trust``,
as the README's advice on sharing a pipeline says.
"""

from __future__ import annotations

import os
import secrets

__all__ = ["TRUSTED_TYPES", "load_model", "save_model"]

#: The sktransfer types ``fit`` writes (frozen features or ``--finetune``), loaded without ``--trust``.
TRUSTED_TYPES = (
    "sktransfer.feature_extraction._extractor.PretrainedFeatureExtractor",
    "sktransfer.feature_extraction._frozen_classifier.FrozenFeatureClassifier",
    "sktransfer.feature_extraction._few_shot_head.FewShotLinearClassifier",
    "sktransfer.finetune._classifier.FineTuneClassifier",
)


def _skops_io():
    try:
        import skops.io
    except ImportError as exc:
        raise ImportError("saving and loading models needs skops: pip install 'sktransfer[skops]'") from exc
    return skops.io


def save_model(model, path, *, overwrite=False):
    """Write `model` to `path` with ``skops.io.dump``, through a temporary file; refuse an existing `path`."""
    sio = _skops_io()
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"-o {path!r} is a folder; pass a file name such as {os.path.join(path, 'model.skops')}"
        )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass --overwrite to replace it, or choose another -o")
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.tmp-{secrets.token_hex(4)}")
    try:
        sio.dump(model, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_model(path, *, trust=()):
    """Load a model file written by :func:`save_model`, trusting :data:`TRUSTED_TYPES` and `trust` only.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file holds a type neither trusted here nor named in `trust`;
        the message lists them.
    """
    sio = _skops_io()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 -- skops raises zip, JSON and key errors for a file it cannot read
        raise ValueError(f"{path!r} is not a model file written by 'sktransfer fit' (skops): {exc}") from exc
    refused = [name for name in untrusted if name not in TRUSTED_TYPES and name not in trust]
    if refused:
        raise ValueError(
            f"{path!r} holds types that are not trusted by default, and loading them could run code from the "
            f"file: {', '.join(refused)}. If you made this file or trust who did, name each with --trust TYPE"
        )
    return sio.load(path, trusted=untrusted)

"""Global pooling of feature maps and token sequences into one vector per image."""

from typing import Literal

import torch

from ..backbones._base import prefix_tokens

POOLINGS = ("avg", "max", "avgmax", "gem", "token")

#: Exponent of generalised-mean pooling (Radenovic et al. 2018 use p=3).
GEM_P = 3.0
_GEM_EPS = 1e-6


def _spatial(x, fmt):
    """View any layout as (batch, channels, positions)."""
    if fmt == "nchw":
        return x.flatten(2)
    if fmt == "nhwc":
        return x.flatten(1, 2).transpose(1, 2)
    # A token sequence: pool the patch tokens; the class token is read by
    # "token", register tokens are neither.
    _, n_prefix = prefix_tokens(fmt)
    return x[:, n_prefix:, :].transpose(1, 2)


def global_pool(x: torch.Tensor, kind: str, fmt: Literal["nchw", "nhwc", "nlc", "nl"] | str = "nchw") -> torch.Tensor:
    """Pool a feature map to (batch, features).

    Parameters
    ----------
    x : torch.Tensor
        (N, C, H, W), (N, H, W, C) or (N, L, C) activations; 2-D input is
        returned as is.
    kind : {"avg", "max", "avgmax", "gem", "token"}
        ``"avgmax"`` concatenates average and max (2C features); ``"gem"`` is
        the generalised mean with p=3 over positive parts; ``"token"`` reads
        the class token of a transformer sequence.
    fmt : {"nchw", "nhwc", "nlc", "nl"}, or a token format with registers
        Layout of ``x`` (see :data:`sktransfer.backbones._base.FEATURE_FORMATS`).
    """
    if x.ndim == 2:
        return x
    if kind == "token":
        if fmt in ("nchw", "nhwc"):
            raise ValueError("pooling='token' needs a token sequence (a ViT layer)")
        if not prefix_tokens(fmt)[0]:
            raise ValueError(
                "pooling='token' reads the class token, and this network's token sequence has none "
                "(e.g. SigLIP): use pooling='avg', or None for the network's own pooling"
            )
        return x[:, 0]
    flat = _spatial(x, fmt)
    if kind == "avg":
        return flat.mean(-1)
    if kind == "max":
        return flat.amax(-1)
    if kind == "avgmax":
        return torch.cat([flat.mean(-1), flat.amax(-1)], dim=1)
    if kind == "gem":
        return flat.clamp(min=_GEM_EPS).pow(GEM_P).mean(-1).pow(1.0 / GEM_P)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {kind!r}")

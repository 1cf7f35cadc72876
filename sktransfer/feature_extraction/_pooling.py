"""Global pooling of feature maps and token sequences into one vector per image."""

from typing import Literal

import torch

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
    if fmt == "nlc":
        # Pool the patch tokens; the class token is read by "token".
        return x[:, 1:, :].transpose(1, 2)
    raise ValueError(f"unknown feature format {fmt!r}")


def global_pool(x: torch.Tensor, kind: str, fmt: Literal["nchw", "nhwc", "nlc"] = "nchw") -> torch.Tensor:
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
    fmt : {"nchw", "nhwc", "nlc"}
        Layout of ``x``.
    """
    if x.ndim == 2:
        return x
    if kind == "token":
        if fmt != "nlc":
            raise ValueError("pooling='token' needs a token sequence (a ViT layer)")
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

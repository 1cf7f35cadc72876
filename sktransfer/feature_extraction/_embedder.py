"""The network a feature extractor runs: uint8 images in, one vector each out.

Putting normalisation, the chosen layer and the pooling into one module
gives both engines (PyTorch and the exported ONNX graph) the same function,
and lets the decoding threads hand over compact uint8 batches.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from ._pooling import global_pool

if TYPE_CHECKING:
    from ..backbones import Backbone


class _StopForward(Exception):
    """Raised by a forward hook once the requested module has run."""


def default_pooling(fmt):
    # The class token where the sequence has one, else the average.
    return "token" if fmt.startswith("nlc") else "avg"


class Embedder(nn.Module):
    """Map a uint8 NCHW batch to (batch, features) through a backbone.

    Parameters
    ----------
    backbone : Backbone
    layer : str, list of str or None
        None: the pre-logits embedding. A layer-group name: the output of
        that group. Any other name: a submodule of the backbone as listed by
        ``backbone.named_modules()`` (``"groups."`` may be left out). A list
        of names: each one's pooled output, concatenated in that order
        (layer groups share one pass through the trunk).
    pooling : str or None
        Global pooling of the feature map; None: the network's own pooling
        and pre-logits for ``layer=None``, ``"avg"`` (``"token"`` for ViT
        sequences) for other layers.
    tta : {"flip"} or None, default=None
        ``"flip"``: the mean of the features of each image and of its
        left-right mirror.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import make_tiny_backbone
    >>> from sktransfer.feature_extraction import Embedder
    >>> embedder = Embedder(make_tiny_backbone(), layer="stage2", pooling="avgmax").eval()
    >>> embedder(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape
    torch.Size([2, 64])
    """

    def __init__(
        self,
        backbone: Backbone,
        layer: str | list[str] | None = None,
        pooling: str | None = None,
        tta: Literal["flip"] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.layer = layer
        self.pooling = pooling
        self.tta = tta
        self._module_name = None
        self._parts = None
        if isinstance(layer, (list, tuple)):
            if not layer:
                raise ValueError("layer is an empty list: give at least one layer name")
            if len(set(layer)) != len(layer):
                raise ValueError(f"layer={list(layer)!r} names a layer twice")
            # One embedder per named layer; layer groups are read off one pass.
            self._parts = [Embedder(backbone, name, pooling) for name in layer]
        elif layer is not None and layer not in backbone.group_names and layer != "pre_logits":
            self._module_name = self._find_module(layer)

    def _find_module(self, layer):
        names = dict(self.backbone.named_modules())
        for candidate in (layer, f"groups.{layer}"):
            if candidate in names and candidate:
                return candidate
        raise ValueError(
            f"layer={layer!r} is neither a layer group of {self.backbone.name} "
            f"({self.backbone.layer_groups}) nor one of its modules "
            "(see backbone.named_modules())"
        )

    @property
    def exportable(self) -> bool:
        """Whether the computation is a plain graph (no hooks), e.g. for ONNX."""
        if self._parts is not None:
            return all(part.exportable for part in self._parts)
        return self._module_name is None

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = self.backbone.preprocessing.normalize(batch)
        if self.tta == "flip":
            # The image and its mirror in one batch; their features averaged.
            # (2, N, C) by reshape, not slicing at len(x): an exported graph
            # keeps the batch size free.
            both = self._features(torch.cat([x, x.flip(-1)]))
            return both.reshape(2, -1, both.shape[1]).mean(0)
        return self._features(x)

    def _features(self, x):
        if self._parts is not None:
            return self._forward_layers(x)
        bb = self.backbone
        if self._module_name is not None:
            return self._forward_hooked(x)
        if self.layer is None or self.layer == "pre_logits":
            if self.pooling is None:
                return bb.forward_embedding(x)
            fmt = bb.group_formats[bb.group_names[-1]]
            return global_pool(bb.forward_trunk(x), self.pooling, fmt)
        fmt = bb.group_formats[self.layer]
        return global_pool(bb.forward_trunk(x, stop=self.layer), self.pooling or default_pooling(fmt), fmt)

    def _forward_layers(self, x):
        bb = self.backbone
        groups = [p.layer for p in self._parts if p.layer in bb.group_names]
        outputs = {}
        if groups:
            last = max(bb.group_names.index(g) for g in groups)
            if bb.input_transform is not None:
                x_in = bb.input_transform(x)
            else:
                x_in = x
            h = x_in
            for name in bb.group_names[: last + 1]:
                h = bb.groups[name](h)
                outputs[name] = h
        feats = []
        for part in self._parts:
            if part.layer in outputs:
                fmt = bb.group_formats[part.layer]
                feats.append(global_pool(outputs[part.layer], part.pooling or default_pooling(fmt), fmt))
            else:
                feats.append(part._features(x))
        return torch.cat(feats, dim=1)

    def _forward_hooked(self, x):
        captured = {}
        caller = threading.get_ident()

        def hook(module, inputs, output):
            # Threads embedding at the same time all see every hook on the
            # module: each one takes its own output only.
            if threading.get_ident() != caller:
                return None
            captured["out"] = output
            raise _StopForward

        module = dict(self.backbone.named_modules())[self._module_name]
        handle = module.register_forward_hook(hook)
        try:
            self.backbone.forward_embedding(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if "out" not in captured:
            raise RuntimeError(f"module {self._module_name!r} was not called by the forward pass")
        out = captured["out"]
        if isinstance(out, (tuple, list)):
            out = out[0]
        fmt = "nlc" if out.ndim == 3 else "nchw"
        return global_pool(out, self.pooling or default_pooling(fmt), fmt)

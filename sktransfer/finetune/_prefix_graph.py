"""The frozen prefix of a fine-tuned network as one exported graph, run on a CPU engine.

The prefix (``network.forward_between(images, None, stop)`` for one or more
``stop`` positions: uint8 images in, one float32 output per stop) is what
this module knows about: which modules it runs (:func:`prefix_parts`,
hashed by :func:`prefix_digest`) and how to run them as one module with an
output per stop. Exporting it, caching the graph and running it on ONNX
Runtime or OpenVINO are the inference runtime's (:mod:`sktransfer.runtime`),
shared with the feature extractor. Both engines read the very same graph,
so it is exported and cached once whichever engine runs it.

Graphs of reproducible weights are kept in the runtime's content-keyed disk
cache, keyed by a hash of the very tensors exported, so a second fit loads
the graph instead of exporting it, and changed weights can never be served
an old graph.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .. import runtime
from ..backbones._weights import state_dict_digest


def prefix_parts(network, stop):
    """The modules ``forward_between(images, None, stop)`` runs, by name (what its output depends on)."""
    backbone = network.backbone
    order = network.positions()
    end = order.index(stop)
    parts = {name: backbone.groups[name] for name in order[1:end] if name in backbone.groups}
    if backbone.input_transform is not None:
        parts["input_transform"] = backbone.input_transform
    if end > order.index("pre_logits"):
        parts["pool"] = backbone.pool
    if end > order.index("pre_logits") + 1:
        parts["pre_logits"] = backbone.pre_logits
    return nn.ModuleDict(parts)


def prefix_digest(network, stop):
    """SHA-256 of the weights (and buffers) the activations at ``stop`` depend on."""
    return state_dict_digest(prefix_parts(network, stop))


class _Prefix(nn.Module):
    """uint8 images -> the activations at each of ``stops`` (a tuple), for export."""

    def __init__(self, network, stops):
        super().__init__()
        self.network = network
        self.stops = list(stops)

    def forward(self, images):
        outs, x, prev = [], images, None
        for stop in self.stops:
            x = self.network.forward_between(x, prev, stop)
            outs.append(x)
            prev = stop
        return tuple(outs)


class PrefixRunner:
    """Run the exported prefix of a network on a graph engine on the CPU.

    Parameters
    ----------
    network : FineTuneNetwork
        On the CPU; put in eval mode for the export and left so.
    stops : list of str
        Positions of ``network.positions()``, in forward order.
    identity : str or None
        Names the network's weights reproducibly (see
        ``backbones._weights.weights_identity``); None keeps the graph in
        memory only, so random weights add no disk entry per fit.
    engine : {"onnxruntime", "openvino"}, default="onnxruntime"
        What runs the graph (the graph, and its disk cache entry, are the
        same for both).

    Attributes
    ----------
    digest : str
        :func:`prefix_digest` at the last stop: the weights exported.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import get_backbone
    >>> from sktransfer.finetune import FineTuneNetwork
    >>> from sktransfer.finetune._prefix_graph import PrefixRunner
    >>> net = FineTuneNetwork(get_backbone("tiny_convnet", weights=None), n_classes=2)
    >>> runner = PrefixRunner(net, ["stage1", "head"], identity=None)
    >>> [tuple(out.shape) for out in runner(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))]
    [(4, 8, 16, 16), (4, 64)]
    """

    def __init__(self, network, stops, identity, engine="onnxruntime"):
        if engine not in runtime.GRAPH_ENGINES:
            raise ValueError(f"engine must be one of {runtime.GRAPH_ENGINES}; got {engine!r}")
        self.stops = list(stops)
        self.engine = engine
        self.digest = prefix_digest(network, self.stops[-1])
        description = None
        if identity is not None:
            description = runtime.describe_output(
                model=network.backbone.name,
                weights="sha256=" + self.digest,
                readout={"purpose": "finetune-prefix", "stops": self.stops},
                preprocessing=dataclasses.asdict(network.backbone.preprocessing),
            )
        self._run = runtime.make_runner(
            engine,
            _Prefix(network.eval(), self.stops),
            device=torch.device("cpu"),
            crop=network.backbone.preprocessing.crop_size,
            description=description,
            n_outputs=len(self.stops),
        )

    def __call__(self, images):
        """uint8 (n, 3, crop, crop) images -> list of float32 tensors, one per stop."""
        return [torch.from_numpy(out) for out in self._run(images)]

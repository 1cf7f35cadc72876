"""The frozen prefix of a fine-tuned network as one exported graph, run on a CPU engine.

The prefix (``network.forward_between(images, None, stop)`` for one or more
``stop`` positions: uint8 images in, one float32 output per stop) is
exported to ONNX once and run by ONNX Runtime or OpenVINO, the two graph
engines the feature extractor uses (:mod:`..feature_extraction._engines`).
Both read the very same graph, so it is exported and cached once whichever
engine runs it.

Graphs of reproducible weights are kept in the library's content-keyed disk
cache (:mod:`..feature_extraction._graph_cache`), keyed by a hash of the
very tensors exported, so a second fit loads the graph instead of exporting
it, and changed weights can never be served an old graph.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import torch
from torch import nn

from ..backbones._weights import state_dict_digest
from ..feature_extraction._onnx_engine import OPSET

GRAPH_ENGINES = ("onnxruntime", "openvino")


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


def _output_names(n):
    return [f"out{i}" for i in range(n)]


def export_prefix(network, stops, crop):
    """``network``'s prefix up to ``stops`` as a serialised ONNX graph (bytes), batch size free.

    The outputs are named ``out0, out1, ...`` in the order of ``stops``. The
    network is exported as it is (eval mode, on the CPU); the caller
    restores its mode and device.
    """
    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    names = _output_names(len(stops))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Tracing warns about shape-dependent Python code (TF 'same' padding
        # computed from the input size); the input size is fixed here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Prefix(network, stops).eval(),
            (example,),
            buffer,
            input_names=["images"],
            output_names=names,
            dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in names}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


class _OnnxRuntimeGraph:
    """uint8 array -> list of float32 arrays, one per output, with ONNX Runtime (sessions are thread-safe)."""

    def __init__(self, graph, n_outputs):
        from ..feature_extraction._onnx_engine import cpu_session

        self.session = cpu_session(graph)
        self.names = _output_names(n_outputs)

    def __call__(self, arr):
        return self.session.run(self.names, {"images": arr})


class _OpenVinoGraph:
    """uint8 array -> list of float32 arrays, one per output, with OpenVINO at float32.

    The compiled model is shared by the whole process (compiling costs more
    than a batch); each thread infers through its own request, since a
    request is not thread-safe, so concurrent ``predict`` calls just work.
    """

    def __init__(self, graph, n_outputs):
        from ..feature_extraction._openvino_engine import ThreadRequests, compiled_model

        compiled = compiled_model(graph, "float32", torch.get_num_threads())
        # Looked up by name: the order of a compiled model's outputs is not
        # promised to be the ONNX graph's.
        self.outputs = [compiled.output(name) for name in _output_names(n_outputs)]
        self._requests = ThreadRequests(compiled)

    def __call__(self, arr):
        request = self._requests.infer(arr)
        # Output tensors are the request's own buffers, overwritten by its next call: copy.
        return [np.array(request.get_tensor(out).data, dtype=np.float32, copy=True) for out in self.outputs]


_GRAPH_RUNNERS = {"onnxruntime": _OnnxRuntimeGraph, "openvino": _OpenVinoGraph}


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
        from ..feature_extraction._graph_cache import cached_graph, graph_key

        if engine not in _GRAPH_RUNNERS:
            raise ValueError(f"engine must be one of {GRAPH_ENGINES}; got {engine!r}")
        self.stops = list(stops)
        self.engine = engine
        self.digest = prefix_digest(network, self.stops[-1])
        crop = network.backbone.preprocessing.crop_size
        key = None
        if identity is not None:
            # No engine in the key: both engines run this one graph.
            key = graph_key(
                {
                    "purpose": "finetune-prefix",
                    "model": network.backbone.name,
                    "tensors": self.digest,
                    "stops": self.stops,
                    "preprocessing": dataclasses.asdict(network.backbone.preprocessing),
                    "opset": OPSET,
                }
            )
        graph = cached_graph(key, lambda: export_prefix(network.eval(), self.stops, crop))
        self._run = _GRAPH_RUNNERS[engine](graph, len(self.stops))

    def __call__(self, images):
        """uint8 (n, 3, crop, crop) images -> list of float32 tensors, one per stop."""
        arr = np.ascontiguousarray(images.numpy() if isinstance(images, torch.Tensor) else images, dtype=np.uint8)
        return [torch.from_numpy(out) for out in self._run(arr)]

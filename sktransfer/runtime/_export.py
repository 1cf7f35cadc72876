"""ONNX Runtime as an inference engine for the feature extractor.

On small CPUs PyTorch eager is not the fastest way to run a fixed network:
ONNX Runtime fuses convolutions with batch norms and activations and picks
better kernels. The embedder (uint8 in, features out) is exported with the
TorchScript-based exporter to bytes, which the session loads from memory;
for reproducible weights the bytes are also cached on disk
(:mod:`._graph_cache`), so that the export runs once per network.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from ._graph_cache import cached_graph, graph_key

OPSET = 17


def onnxruntime_available():
    from ._engines import engine_available

    return engine_available("onnxruntime")


def export_graph(embedder, crop):
    """The embedder as a serialised ONNX graph (bytes), batch size left free."""
    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Tracing warns about shape-dependent Python code (e.g. padding
        # computed from the input size); the input size is fixed here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            embedder.cpu().eval(),
            (example,),
            buffer,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def float32_graph(embedder, description):
    """The embedder's ONNX graph (bytes): from the disk cache, or exported (and stored).

    Shared by the graph engines and by int8 calibration, which all read the
    same exported graph. ``description``: see :func:`._graph_cache.graph_key`;
    None keeps the graph in memory only.
    """
    crop = embedder.backbone.preprocessing.crop_size
    key = None if description is None else graph_key({**description, "format": "onnx", "opset": OPSET})
    return cached_graph(key, lambda: export_graph(embedder, crop))


def cpu_session(graph):
    """An ONNX Runtime CPU session for ``graph`` (bytes) at this thread's torch thread budget."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    # Decoding threads run beside the network: idle ORT workers must sleep,
    # not spin, or they take the cores the decoders need.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Errors only: graph optimisation reports every constant it folds away
    # as a warning, which is noise to a user of the extractor.
    opts.log_severity_level = 3
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """Run an exported embedder with ONNX Runtime on the CPU.

    Parameters
    ----------
    embedder : Embedder
    description : dict or None
        Everything that determines the graph's output (see
        :func:`._graph_cache.graph_key`); None: the graph is not cached on
        disk (weights that cannot be reproduced).
    graph : bytes or None
        A graph to run instead of the exported one (the calibrated int8 graph).
    """

    def __init__(self, embedder, description, graph=None):
        if graph is None:
            graph = float32_graph(embedder, description)
        self.session = cpu_session(graph)

    def __call__(self, batch):
        arr = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        return self.session.run(None, {"images": np.ascontiguousarray(arr, dtype=np.uint8)})[0].astype(np.float32)

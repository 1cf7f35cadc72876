"""Exporting a frozen torch module to ONNX: one export for every caller.

The extractor's embedder (one output) and the fine-tuner's frozen prefix
(one output per stop) are both a function of a uint8 NCHW batch. Each is
exported with the TorchScript-based exporter, batch size left free, to
bytes that the graph engines load from memory. The outputs are named
``out0, out1, ...`` (:func:`output_names`), in the order the module returns
them. For reproducible weights the bytes are also kept in the disk cache
(:mod:`._graph_cache`), so the export runs once per network and readout.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from ._graph_cache import cached_graph, graph_key

#: The ONNX operator set the graphs are exported at.
OPSET = 17


def output_names(n_outputs: int) -> list[str]:
    """The names of an exported graph's outputs: ``out0, out1, ...``.

    Examples
    --------
    >>> output_names(2)
    ['out0', 'out1']
    """
    return [f"out{i}" for i in range(n_outputs)]


def export_onnx(module: nn.Module, crop: int, n_outputs: int = 1) -> bytes:
    """``module`` as a serialised ONNX graph (bytes), batch size left free.

    Parameters
    ----------
    module : torch.nn.Module
        uint8 images of shape (batch, 3, crop, crop) -> one tensor, or a
        tuple of ``n_outputs`` tensors, each with the batch first. Exported
        as it is, in eval mode on the CPU (it is moved there and switched to
        eval; the caller restores its mode and device if it needs them).
    crop : int
        Height and width of the example input.
    n_outputs : int, default=1
        How many tensors the module returns, named by :func:`output_names`.

    Returns
    -------
    bytes
    """
    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    names = output_names(n_outputs)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Tracing warns about shape-dependent Python code (e.g. TF 'same'
        # padding computed from the input size); the input size is fixed here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.cpu().eval(),
            (example,),
            buffer,
            input_names=["images"],
            output_names=names,
            dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in names}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def exported_graph(module: nn.Module, crop: int, description: Mapping | None, n_outputs: int = 1) -> bytes:
    """The float32 ONNX graph of ``module``: from the disk cache, or exported now (and stored).

    Shared by both graph engines and by int8 calibration, which all read
    the same exported graph (so no engine is part of its key).

    Parameters
    ----------
    module, crop, n_outputs :
        As for :func:`export_onnx`.
    description : mapping or None
        What determines the module's outputs (see
        :func:`~sktransfer.runtime.describe_output`); None keeps the graph
        in memory only (weights that cannot be reproduced).

    Returns
    -------
    bytes
    """
    key = None
    if description is not None:
        key = graph_key({**description, "format": "onnx", "opset": OPSET, "outputs": output_names(n_outputs)})
    return cached_graph(key, lambda: export_onnx(module, crop, n_outputs))

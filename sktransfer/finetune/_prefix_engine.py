"""Which engine runs a fine-tuner's frozen prefix: at fit, and at prediction.

The fine-tuner's ``engine`` parameter names what runs the frozen prefix
(the layer groups that do not train) outside training: PyTorch, or a graph
engine on the CPU (:mod:`._fast_prefix`). A fit resolves it once and holds
one :class:`~._fast_prefix.FastPrefix` (:func:`fit_fast_prefix`).
Prediction runs the prefix on that engine only while the prefix still
computes what the fit ran there (:func:`prediction_prefix`); a graph engine
named after the fit (``set_params(engine=...)``) is obeyed too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._fast_prefix import FastPrefix, resolve_inference_engine
from ._network import FineTuneNetwork, suffix_start
from ._prefix_graph import GRAPH_ENGINES

__all__ = ["fit_fast_prefix", "prediction_prefix"]


def fit_fast_prefix(
    current: FastPrefix | None, engine: str, device: torch.device, network_identity: Callable
) -> FastPrefix:
    """The :class:`FastPrefix` of a fit on ``device`` with the ``engine`` parameter.

    ``current`` (the one a previous ``initialize`` of the same fit built, or
    None for a new fit) is kept when it runs the same engine, so a refit
    reuses the runners built so far.

    Parameters
    ----------
    current : FastPrefix or None
    engine : {"auto", "torch", "onnxruntime", "openvino"}
    device : torch.device
        The resolved device.
    network_identity : callable
        Returns the pretrained weights' identity (or None), when the first
        graph is built.

    Returns
    -------
    FastPrefix
        Its ``engine`` is the resolved one.
    """
    resolved = resolve_inference_engine(engine, device)
    if current is not None and current.engine == resolved:
        return current
    return FastPrefix(resolved, network_identity)


def prediction_prefix(
    fast: FastPrefix | None,
    engine: str,
    *,
    precision: str,
    device: torch.device,
    network: FineTuneNetwork,
    n_unfrozen: int,
) -> tuple | None:
    """(runner, entry position) when prediction can run the prefix on a graph engine, else None.

    Only when the frozen prefix still holds the weights the fit ran on the
    engine (checked by hash), at float32 on the CPU, and the engine is
    installed here.

    Parameters
    ----------
    fast : FastPrefix or None
        The fit's (None: not fitted through ``initialize``).
    engine : {"auto", "torch", "onnxruntime", "openvino"}
        The ``engine`` parameter now: set after fit, ``"torch"`` or another
        graph engine is obeyed.
    precision : str
        The ``precision`` parameter; graph engines run float32 only.
    device : torch.device
        Where the network is.
    network : FineTuneNetwork
    n_unfrozen : int
        How many layer groups trained: the prefix ends where they start.
    """
    if fast is None or engine == "torch" or precision != "float32" or device.type != "cpu":
        return None
    if engine in GRAPH_ENGINES and engine != fast.engine:
        resolve_inference_engine(engine, device)  # installed here?
        fast = fast.on_engine(engine)
    if fast.engine != "torch":
        try:
            resolve_inference_engine(fast.engine, device)  # installed here?
        except ImportError:
            # Unpickled where the fit's engine is not installed. PyTorch runs
            # the same function, so what "auto" chose is merely dropped; a
            # named engine stays an ImportError that names its package.
            if engine == "auto":
                return None
            raise
    start = suffix_start(network, n_unfrozen)
    runner = None if start is None else fast.runner_ending_at(network, start)
    return None if runner is None else (runner, start)

"""The frozen prefix of a fine-tuned network on a fast CPU inference engine.

Fine-tuning trains only the last layer groups; everything before them (the
frozen prefix) is a fixed function of the image, run once per fit to fill
the activation cache and again for every image ``predict`` sees. On a CPU,
ONNX Runtime runs such a fixed graph faster than PyTorch eager (fused
convolutions, batch norms and activations), so the prefix is exported to
ONNX and run there; training stays in PyTorch.

* :func:`resolve_inference_engine` turns the ``inference_engine`` parameter
  into the engine a fit uses (``"auto"``: ONNX Runtime on a CPU when it is
  installed, else PyTorch).
* :class:`PrefixRunner` exports ``network.forward_between(images, None,
  stop)`` for one or more ``stop`` positions (uint8 images in, one output
  per stop) and runs it. Graphs of reproducible weights are kept in the
  library's content-keyed disk cache (:mod:`..feature_extraction._graph_cache`),
  keyed by a hash of the very tensors exported, so a second fit loads the
  graph instead of exporting it, and changed weights can never be served an
  old graph.
* :class:`FastPrefix` is what a fit holds: the resolved engine and the
  runners it built, looked up by the prefix's weights, so ``predict`` reuses
  the fit's runner only while the prefix still holds the weights it was
  exported with.
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
import torch
from torch import nn

from ..backbones._weights import state_dict_digest
from ..feature_extraction._onnx_engine import OPSET, cpu_session, onnxruntime_available

ENGINES = ("auto", "torch", "onnxruntime")


def resolve_inference_engine(engine, device):
    """The engine a fit on ``device`` runs its frozen prefix with.

    ``"auto"`` is ONNX Runtime on a CPU when it is installed, else PyTorch
    (on a GPU the network already runs fast, and stays there). A forced
    ``"onnxruntime"`` without the package is an ImportError, on a GPU a
    ValueError.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.finetune._fast_prefix import resolve_inference_engine
    >>> resolve_inference_engine("torch", torch.device("cpu"))
    'torch'
    >>> resolve_inference_engine("auto", torch.device("cuda"))
    'torch'
    """
    if engine == "torch":
        return "torch"
    if engine == "onnxruntime":
        if not onnxruntime_available():
            raise ImportError(
                "inference_engine='onnxruntime' needs the onnxruntime and onnx packages: "
                "pip install onnxruntime onnx (or use inference_engine='auto' or 'torch')"
            )
        if device.type != "cpu":
            raise ValueError(
                f"inference_engine='onnxruntime' runs on the CPU; the network is on {device.type!r}. "
                "Use inference_engine='auto' or 'torch'."
            )
        return "onnxruntime"
    return "onnxruntime" if device.type == "cpu" and onnxruntime_available() else "torch"


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


def export_prefix(network, stops, crop):
    """``network``'s prefix up to ``stops`` as a serialised ONNX graph (bytes), batch size free.

    The network is exported as it is (eval mode, on the CPU); the caller
    restores its mode and device.
    """
    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    names = [f"out{i}" for i in range(len(stops))]
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


class PrefixRunner:
    """Run the exported prefix of a network with ONNX Runtime on the CPU.

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

    Attributes
    ----------
    digest : str
        :func:`prefix_digest` at the last stop: the weights exported.
    """

    def __init__(self, network, stops, identity):
        import dataclasses

        from ..feature_extraction._graph_cache import cached_graph, graph_key

        self.stops = list(stops)
        self.digest = prefix_digest(network, self.stops[-1])
        crop = network.backbone.preprocessing.crop_size
        key = None
        if identity is not None:
            key = graph_key(
                {
                    "purpose": "finetune-prefix",
                    "model": network.backbone.name,
                    "tensors": self.digest,
                    "stops": self.stops,
                    "preprocessing": dataclasses.asdict(network.backbone.preprocessing),
                    "engine": "onnxruntime",
                    "opset": OPSET,
                }
            )
        graph = cached_graph(key, lambda: export_prefix(network.eval(), self.stops, crop))
        self.session = cpu_session(graph)

    def __call__(self, images):
        """uint8 (n, 3, crop, crop) images -> list of float32 tensors, one per stop."""
        arr = np.ascontiguousarray(images.numpy() if isinstance(images, torch.Tensor) else images, dtype=np.uint8)
        return [torch.from_numpy(out) for out in self.session.run(None, {"images": arr})]


class FastPrefix:
    """A fit's engine for the frozen prefix, and the ONNX Runtime runners it built.

    Parameters
    ----------
    engine : {"onnxruntime", "torch"}
        Resolved (:func:`resolve_inference_engine`).
    identity : callable
        Returns the network's weights identity (or None); called once, when
        the first runner is built.

    Attributes
    ----------
    built : int
        How many runners this object built (each one a disk cache lookup,
        and an export when the graph was not cached).
    """

    def __init__(self, engine, identity):
        self.engine = engine
        self._identity = identity
        self._runners = {}  # (stops, digest) -> PrefixRunner
        # Last stop -> (stops, digest) of the runners a fit used: what
        # ``runner_ending_at`` may rebuild after unpickling.
        self._used = {}
        self._lock = threading.Lock()
        self.built = 0

    def runner(self, network, stops):
        """A runner of ``network``'s prefix to ``stops`` for its current weights (None: PyTorch)."""
        if self.engine != "onnxruntime":
            return None
        stops = tuple(stops)
        return self._get(network, stops, prefix_digest(network, stops[-1]))

    def _get(self, network, stops, digest):
        with self._lock:
            found = self._runners.get((stops, digest))
            if found is None:
                if callable(self._identity):
                    self._identity = self._identity()
                found = self._runners[(stops, digest)] = PrefixRunner(network, stops, self._identity)
                self.built += 1
            self._used[stops[-1]] = (stops, digest)
            return found

    def runner_ending_at(self, network, stop):
        """The runner a fit used up to ``stop``, if the network's prefix still has its weights; else None.

        For prediction: the prefix a fit ran through the engine is still the
        same function after training only when its weights did not change
        (they are hashed again here); then its runner is reused, or rebuilt
        from the disk cache after unpickling.
        """
        if self.engine != "onnxruntime" or stop not in self._used:
            return None
        stops, digest = self._used[stop]
        if prefix_digest(network, stop) != digest:
            return None
        return self._get(network, stops, digest)

    def __getstate__(self):
        # Sessions do not pickle; an unpickled fit builds its runners again
        # (from the disk cache) when it needs one.
        identity = None if callable(self._identity) else self._identity
        return {"engine": self.engine, "identity": identity, "used": dict(self._used)}

    def __setstate__(self, state):
        self.__init__(state["engine"], state["identity"])
        self._used = state["used"]


class FastPrefixMixin:
    """The ``inference_engine`` parameter of a fine-tuning skorch net.

    The host is a skorch net with ``module_`` a ``FineTuneNetwork``, the
    fitted ``device_`` and ``n_unfrozen_groups_``, and the parameters
    ``inference_engine``, ``dtype``, ``model`` and ``weights``.
    ``inference_engine_`` is the engine the fit resolved to.
    """

    def _start_fast_prefix(self):
        """Resolve the engine, keeping the runners built so far (a refit predicts with them).

        A new fit clears ``_fast_prefix`` first: its network may differ.
        """
        from ..backbones._weights import weights_identity

        engine = resolve_inference_engine(self.inference_engine, self.device_)
        current = getattr(self, "_fast_prefix", None)
        if current is None or current.engine != engine:
            model, weights = self.model, self.weights
            self._fast_prefix = FastPrefix(engine, lambda: weights_identity(model, weights))
        self.inference_engine_ = engine

    def _prediction_prefix(self):
        """(runner, entry position) when prediction can run the prefix on the fast engine, else None.

        Only when the frozen prefix still holds the weights the fit ran on
        the engine (checked by hash), at float32 on the CPU.
        """
        from ._network import suffix_start

        fast = getattr(self, "_fast_prefix", None)
        # set_params(inference_engine="torch") after fit is obeyed too.
        if fast is None or self.inference_engine == "torch" or self.dtype != "float32" or self.device_.type != "cpu":
            return None
        start = suffix_start(self.module_, self.n_unfrozen_groups_)
        runner = None if start is None else fast.runner_ending_at(self.module_, start)
        return None if runner is None else (runner, start)

    def _predict_from_prefix(self, images, prefix):
        """The network's output for uint8 ``images``: the prefix on the engine, the rest in PyTorch."""
        runner, start = prefix
        activations = runner(images)[-1]
        self.module_.eval()
        with torch.no_grad():
            return self.infer(activations, start=start)

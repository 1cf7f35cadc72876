"""The frozen prefix of a fine-tuned network on a fast CPU inference engine.

Fine-tuning trains only the last layer groups; everything before them (the
frozen prefix) is a fixed function of the image, run once per fit to fill
the activation cache and again for every image ``predict`` sees. On a CPU,
the graph engines the feature extractor uses (OpenVINO, ONNX Runtime) run
such a fixed graph faster than PyTorch eager (fused convolutions, batch
norms and activations), so the prefix is exported to ONNX and run there
(:mod:`._prefix_graph`); training stays in PyTorch.

* :func:`resolve_inference_engine` turns the ``inference_engine`` parameter
  into the engine a fit uses, through the runtime's one engine choice
  (:func:`sktransfer.runtime.select_engine`: ``"auto"`` is OpenVINO then ONNX
  Runtime on a CPU, whichever is installed first, else PyTorch).
* :class:`FastPrefix` is what a fit holds: the resolved engine and the
  runners it built, looked up by the prefix's weights, so ``predict`` reuses
  the fit's runner only while the prefix still holds the weights it was
  exported with.
* :class:`FastPrefixMixin` gives the estimator its ``inference_engine``
  behaviour in fit and predict.
"""

from __future__ import annotations

import threading

import torch

from .. import runtime
from ._prefix_graph import PrefixRunner, prefix_digest

ENGINES = ("auto", *runtime.ENGINES)


def resolve_inference_engine(engine, device):
    """The engine a fit on ``device`` runs its frozen prefix with.

    The runtime's engine choice for a network that always exports:
    ``"auto"`` on a CPU is the first installed engine of the runtime's order
    (OpenVINO, then ONNX Runtime), else PyTorch; on a GPU the network
    already runs fast, and stays in PyTorch. A forced graph engine without
    its package is an ImportError, on a GPU a ValueError.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.finetune._fast_prefix import resolve_inference_engine
    >>> resolve_inference_engine("torch", torch.device("cpu"))
    'torch'
    >>> resolve_inference_engine("auto", torch.device("cuda"))
    'torch'
    """
    return runtime.select_engine(engine, device, exportable=True)


class FastPrefix:
    """A fit's engine for the frozen prefix, and the graph runners it built.

    Parameters
    ----------
    engine : {"openvino", "onnxruntime", "torch"}
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
        self._siblings = {}  # engine -> FastPrefix sharing this one's record
        self.built = 0

    def runner(self, network, stops):
        """A runner of ``network``'s prefix to ``stops`` for its current weights (None: PyTorch).

        On PyTorch the prefix is still recorded, so that prediction can move
        it to a graph engine named after the fit (see :meth:`on_engine`).
        """
        stops = tuple(stops)
        digest = prefix_digest(network, stops[-1])
        if self.engine == "torch":
            with self._lock:
                self._used[stops[-1]] = (stops, digest)
            return None
        return self._get(network, stops, digest)

    def on_engine(self, engine):
        """This fit's prefix on another engine: for ``set_params(inference_engine=...)`` after fit.

        It shares the record of the prefixes the fit ran (and their weight
        hashes), so :meth:`runner_ending_at` checks the weights the same way;
        its runners are its own, built once (from the disk cache where the
        graph was exported before).
        """
        if engine == self.engine:
            return self
        with self._lock:
            sibling = self._siblings.get(engine)
            if sibling is None:
                sibling = FastPrefix(engine, self._identity)
                sibling._used = self._used  # one record: later fits' entries reach both
                self._siblings[engine] = sibling
            return sibling

    def _get(self, network, stops, digest):
        with self._lock:
            found = self._runners.get((stops, digest))
            if found is None:
                if callable(self._identity):
                    self._identity = self._identity()
                found = PrefixRunner(network, stops, self._identity, engine=self.engine)
                self._runners[(stops, digest)] = found
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
        if self.engine == "torch" or stop not in self._used:
            return None
        stops, digest = self._used[stop]
        if prefix_digest(network, stop) != digest:
            return None
        return self._get(network, stops, digest)

    def __getstate__(self):
        # Sessions and compiled models do not pickle; an unpickled fit builds
        # its runners again (from the disk cache) when it needs one.
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
        the engine (checked by hash), at float32 on the CPU, and the engine
        is installed here.
        """
        from ._network import suffix_start

        fast = getattr(self, "_fast_prefix", None)
        # set_params(inference_engine=...) after fit is obeyed: "torch", or
        # another graph engine for the prefix the fit recorded.
        if fast is None or self.inference_engine == "torch" or self.dtype != "float32" or self.device_.type != "cpu":
            return None
        if self.inference_engine in runtime.GRAPH_ENGINES and self.inference_engine != fast.engine:
            resolve_inference_engine(self.inference_engine, self.device_)  # installed here?
            fast = fast.on_engine(self.inference_engine)
        if runtime.reselect_engine(fast.engine, self.device_) != fast.engine:
            # Unpickled where the fit's engine is not installed. PyTorch runs
            # the same function, so what "auto" chose is merely dropped; a
            # named engine stays an ImportError that names its package.
            if self.inference_engine == "auto":
                return None
            resolve_inference_engine(fast.engine, self.device_)
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

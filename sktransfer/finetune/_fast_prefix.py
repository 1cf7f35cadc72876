"""The frozen prefix of a fine-tuned network on a fast CPU inference engine.

Fine-tuning trains only the last layer groups; everything before them (the
frozen prefix) is a fixed function of the image, run once per fit to fill
the activation cache and again for every image ``predict`` sees. On a CPU,
the graph engines the feature extractor uses (OpenVINO, ONNX Runtime) run
such a fixed graph faster than PyTorch eager (fused convolutions, batch
norms and activations), so the prefix is exported to ONNX and run there
(:mod:`._prefix_graph`); training stays in PyTorch.

* :func:`resolve_inference_engine` turns the ``inference_engine`` parameter
  into the engine a fit uses (``"auto"``: the extractor's order on a CPU,
  OpenVINO then ONNX Runtime, whichever is installed first, else PyTorch).
* :class:`FastPrefix` is what a fit holds: the resolved engine and the
  runners it built, looked up by the prefix's weights, so ``predict`` reuses
  the fit's runner only while the prefix still holds the weights it was
  exported with.
* :mod:`._prefix_engine` gives the estimator its ``engine`` behaviour in
  fit and predict.
"""

from __future__ import annotations

import threading

from ..feature_extraction._engines import _PACKAGES, CPU_ORDER, engine_available
from ._prefix_graph import GRAPH_ENGINES, PrefixRunner, prefix_digest

ENGINES = ("auto", "torch", *GRAPH_ENGINES)


def resolve_inference_engine(engine, device):
    """The engine a fit on ``device`` runs its frozen prefix with.

    ``"auto"`` on a CPU is the first installed engine of the feature
    extractor's order (OpenVINO, then ONNX Runtime), else PyTorch; on a GPU
    the network already runs fast, and stays in PyTorch. A forced graph
    engine without its package is an ImportError, on a GPU a ValueError.

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
    if engine in GRAPH_ENGINES:
        # A GPU comes first: installing the engine would not help there.
        if device.type != "cpu":
            raise ValueError(
                f"inference_engine={engine!r} runs on the CPU; the network is on {device.type!r}. "
                "Use inference_engine='auto' or 'torch'."
            )
        if not engine_available(engine):
            packages = " ".join(_PACKAGES[engine])
            raise ImportError(
                f"inference_engine={engine!r} needs the {' and '.join(_PACKAGES[engine])} packages: "
                f"pip install {packages} (or use inference_engine='auto' or 'torch')"
            )
        return engine
    if device.type == "cpu":
        for candidate in CPU_ORDER:
            if candidate in GRAPH_ENGINES and engine_available(candidate):
                return candidate
    return "torch"


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

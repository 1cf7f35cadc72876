"""The frozen prefix of a fine-tuned network on a fast CPU inference engine.

Fine-tuning trains only the last layer groups; everything before them (the
frozen prefix) is a fixed function of the image, run once per fit to fill
the activation cache and again for every image ``predict`` sees. On a CPU,
the graph engines the feature extractor uses (OpenVINO, ONNX Runtime) run
such a fixed graph faster than PyTorch eager (fused convolutions, batch
norms and activations), so the prefix is exported to ONNX and run there
(:mod:`._prefix_graph`); training stays in PyTorch.

* :func:`fit_fast_prefix` turns the ``engine`` parameter into the engine a
  fit uses, through the runtime's one engine choice
  (:func:`sktransfer.runtime.select_engine`: ``"auto"`` is OpenVINO then ONNX
  Runtime on a CPU, whichever is installed first, else PyTorch; on a GPU,
  PyTorch).
* :class:`FastPrefix` is what a fit holds: the resolved engine and the
  runners it built, looked up by the prefix's weights, so ``predict`` reuses
  the fit's runner only while the prefix still holds the weights it was
  exported with.
* :func:`prediction_prefix` says whether prediction runs the prefix on that
  engine: only while the prefix still computes what the fit ran there; a
  graph engine named after the fit (``set_params(engine=...)``) is obeyed
  too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from .. import runtime
from ._network import FineTuneNetwork, suffix_start
from ._prefix_graph import PrefixRunner, prefix_digest

ENGINES = ("auto", *runtime.ENGINES)


class FastPrefix:
    """A fit's engine for the frozen prefix, and the graph runners it built.

    Parameters
    ----------
    engine : {"openvino", "onnxruntime", "torch"}
        Resolved (:func:`sktransfer.runtime.select_engine`).
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
        """This fit's prefix on another engine: for ``set_params(engine=...)`` after fit.

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
    resolved = runtime.select_engine(engine, device)
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
    if engine in runtime.GRAPH_ENGINES and engine != fast.engine:
        runtime.select_engine(engine, device)  # installed here?
        fast = fast.on_engine(engine)
    if fast.engine != "torch":
        try:
            runtime.select_engine(fast.engine, device)  # installed here?
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

"""The runners: one frozen network on one engine, behind one small interface.

A runner is a callable ``runner(batch) -> list of numpy arrays``: ``batch``
is a uint8 NCHW batch (a torch tensor or a numpy array), and the list holds
one float32 array per output of the network, in its order (a network with
one output gives a list of one). Callers build a runner once (in ``fit``)
and share it between threads, so calling one never changes it:

* :class:`TorchRunner` runs the module itself in inference mode, under
  autocast below float32;
* :class:`OnnxRuntimeRunner` runs the exported graph in an ONNX Runtime
  session (sessions are thread-safe);
* :class:`OpenVinoRunner` runs it compiled by OpenVINO, through one infer
  request per thread (:class:`ThreadRequests`), since a request
  is not thread-safe: concurrent ``transform`` or ``predict`` calls just work.

:func:`make_runner` builds the runner of an engine chosen by
:func:`~._engines.select_engine`, exporting the graph (or reading it from
the disk cache) for the graph engines.

OpenVINO reads the ONNX graph the runtime exports and compiles it for the
CPU it runs on. Three settings matter beyond speed:

* ``INFERENCE_PRECISION_HINT`` is always set. Left alone, the CPU plugin
  runs bfloat16 on processors that have it, so float32 results would differ
  from machine to machine; float32 is forced unless a reduced precision was
  asked for (and is native here, see :mod:`._engines`).
* ``INFERENCE_NUM_THREADS`` is torch's intra-op thread budget, the one the
  user controls with ``torch.set_num_threads``, and threads are not pinned
  to cores: the decoding threads run beside the network and must not find
  their cores taken.
* One compiled model per graph and precision per process: compiling takes
  a fraction of a second per network, more than a batch. Each thread runs
  it through its own infer request (a request is not thread-safe).
* Streams: a compiled model runs one inference per stream at a time, so
  threads that call it at once take turns on a single stream. A process
  whose threads run the network concurrently (a dask worker with several
  task threads) says so with :func:`set_concurrent_callers`: the runners
  built after compile one stream per caller, each with the caller's torch
  thread budget (ONNX Runtime: one session per calling thread).

A calibrated int8 model (an OpenVINO IR: XML text plus a weights blob) is
carried as one byte string, see :func:`pack_model`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..utils import autocast_context
from ._graphs import exported_graph, output_names

if TYPE_CHECKING:
    import onnxruntime
    import openvino


def _uint8_array(batch):
    arr = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    return np.ascontiguousarray(arr, dtype=np.uint8)


class TorchRunner:
    """Run a module with PyTorch in inference mode.

    Parameters
    ----------
    module : torch.nn.Module
        uint8 images -> a tensor or a tuple of tensors. Moved to ``device``
        (in place) and put in eval mode.
    device : torch.device
    precision : {"float32", "float16", "bfloat16"}, default="float32"
        Below float32, the forward pass runs under autocast.
    """

    def __init__(self, module: nn.Module, device: torch.device, precision: str = "float32"):
        self.module = module.to(device).eval()
        self.device = device
        self.precision = precision
        # Convolutions run faster on NHWC tensors: cuDNN's tensor-core
        # kernels on a GPU, oneDNN's on a CPU (most of all for depthwise and
        # 1x1 convolutions). The memory format changes no result beyond
        # rounding: every op keeps its logical NCHW meaning.
        self.channels_last = device.type in ("cuda", "cpu")
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)

    def __call__(self, batch) -> list[np.ndarray]:
        batch = torch.as_tensor(batch).to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            outputs = self.module(batch)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return [out.float().cpu().numpy() for out in outputs]


def cpu_session(graph: bytes) -> onnxruntime.InferenceSession:
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


_CALLERS = [1]  # threads of this process that run networks at once (set_concurrent_callers)


def set_concurrent_callers(n: int) -> int:
    """Declare how many threads of this process run a network at the same time; returns the previous number.

    For worker processes (a dask worker's task threads): runners built
    afterwards give each caller its own OpenVINO stream, or ONNX Runtime
    session, of the caller's ``torch.get_num_threads()`` threads, instead
    of one shared by all (on which concurrent calls take turns). Default 1.

    Parameters
    ----------
    n : int
        Concurrent calling threads, at least 1.

    Returns
    -------
    int
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    previous, _CALLERS[0] = _CALLERS[0], n
    return previous


def concurrent_callers() -> int:
    """The number :func:`set_concurrent_callers` declared (1 unless set)."""
    return _CALLERS[0]


class OnnxRuntimeRunner:
    """Run an exported graph with ONNX Runtime on the CPU.

    Parameters
    ----------
    graph : bytes
        An ONNX graph with one uint8 input (the float32 export, or the
        calibrated int8 one). With more than one concurrent caller declared
        (:func:`set_concurrent_callers`), each calling thread gets a session
        of its own, sized by its torch thread budget.
    """

    def __init__(self, graph: bytes):
        self.session = cpu_session(graph)
        self._per_thread = None
        if concurrent_callers() > 1:
            self._graph = graph
            self._per_thread = threading.local()
            self._per_thread.session = self.session

    def _session(self):
        if self._per_thread is None:
            return self.session
        session = getattr(self._per_thread, "session", None)
        if session is None:
            session = self._per_thread.session = cpu_session(self._graph)
        return session

    def __call__(self, batch) -> list[np.ndarray]:
        # None: every output, in the graph's order (the order of export).
        outputs = self._session().run(None, {"images": _uint8_array(batch)})
        return [np.asarray(out, dtype=np.float32) for out in outputs]


# ---------------------------------------------------------------- OpenVINO

_OV_PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int8": "f32"}
_COMPILED = {}  # (graph digest, precision, threads) -> compiled model
_COMPILED_LOCK = threading.Lock()
_MAX_COMPILED = 8  # a few networks at a time; the oldest is dropped beyond
_CORE = None


def core() -> openvino.Core:
    """The process's one ``openvino.Core`` (creating one loads the plugins)."""
    global _CORE
    with _COMPILED_LOCK:
        if _CORE is None:
            import openvino as ov

            _CORE = ov.Core()
        return _CORE


def pack_model(model: openvino.Model) -> bytes:
    """An ``openvino.Model`` as bytes: 8-byte length of the XML, the XML, the weights."""
    import tempfile
    from pathlib import Path

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, xml, compress_to_fp16=False)
        text, weights = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()
    return len(text).to_bytes(8, "little") + text + weights


def unpack_model(data: bytes) -> openvino.Model:
    """The ``openvino.Model`` :func:`pack_model` wrote."""
    import openvino as ov

    size = int.from_bytes(data[:8], "little")
    text, weights = data[8 : 8 + size], data[8 + size :]
    return core().read_model(text, ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))


def compile_config(precision: str, threads: int, streams: int = 1) -> dict:
    """The CPU plugin's settings for ``precision`` (see the module docstring).

    ``threads`` in all, shared by ``streams`` streams.
    """
    config = {
        "INFERENCE_PRECISION_HINT": _OV_PRECISIONS[precision],
        "INFERENCE_NUM_THREADS": int(threads),
        # One batch at a time from the extractor's loop: latency mode puts
        # every thread on that batch (one stream).
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }
    if streams > 1:  # one batch at a time per caller, several callers
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": int(streams)})
    return config


def compiled_model(
    graph: bytes, precision: str, threads: int, packed: bool = False, streams: int = 1
) -> openvino.CompiledModel:
    """Compile ``graph`` (ONNX bytes, or a packed IR) once per process, precision, threads and streams."""
    import hashlib

    key = (hashlib.sha256(graph).hexdigest(), precision, int(threads), int(streams))
    with _COMPILED_LOCK:
        found = _COMPILED.get(key)
    if found is not None:
        return found
    model = unpack_model(graph) if packed else core().read_model(graph, b"")
    compiled = core().compile_model(model, "CPU", compile_config(precision, threads, streams))
    with _COMPILED_LOCK:
        compiled = _COMPILED.setdefault(key, compiled)
        while len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.pop(next(iter(_COMPILED)))
    return compiled


class ThreadRequests:
    """Inference on a compiled model through one infer request per thread.

    A request is not thread-safe, and creating one per call costs more than
    keeping it; each thread keeps its own. The request returned holds the
    outputs in its own buffers until that thread's next call.

    Parameters
    ----------
    compiled : openvino.CompiledModel
    """

    def __init__(self, compiled: openvino.CompiledModel):
        self.compiled = compiled
        self._local = threading.local()

    def infer(self, arr: np.ndarray) -> openvino.InferRequest:
        """Run ``arr`` (the model's one input) and return the request holding the outputs."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({0: arr})
        return request


class OpenVinoRunner:
    """Run an exported graph with OpenVINO on the CPU, one infer request per thread.

    Compiled with one stream per concurrent caller (:func:`set_concurrent_callers`).

    Parameters
    ----------
    graph : bytes
        The ONNX graph, or for ``precision="int8"`` the calibrated model
        packed by :func:`pack_model`.
    precision : {"float32", "bfloat16", "float16", "int8"}, default="float32"
        Already checked against the CPU (:func:`~._engines.effective_precision`).
    n_outputs : int, default=1
    """

    def __init__(self, graph: bytes, precision: str = "float32", n_outputs: int = 1):
        self.precision = precision
        # One stream per concurrent caller, each of the caller's thread budget.
        streams = concurrent_callers()
        self.compiled = compiled_model(
            graph, precision, torch.get_num_threads() * streams, packed=precision == "int8", streams=streams
        )
        # Looked up by name: the order of a compiled model's outputs is not
        # promised to be the ONNX graph's. A single output is the first.
        if n_outputs == 1:
            self.outputs = [self.compiled.output(0)]
        else:
            self.outputs = [self.compiled.output(name) for name in output_names(n_outputs)]
        self._requests = ThreadRequests(self.compiled)

    def __call__(self, batch) -> list[np.ndarray]:
        request = self._requests.infer(_uint8_array(batch))
        # Output tensors are the request's own buffers, overwritten by its next call: copy.
        return [np.array(request.get_tensor(out).data, dtype=np.float32, copy=True) for out in self.outputs]

    def __getstate__(self):
        raise TypeError("an OpenVinoRunner is rebuilt after unpickling, not pickled")


def make_runner(
    engine: str,
    module: nn.Module,
    *,
    device: torch.device,
    crop: int,
    precision: str = "float32",
    description: Mapping | None = None,
    graph: bytes | None = None,
    n_outputs: int = 1,
) -> TorchRunner | OnnxRuntimeRunner | OpenVinoRunner:
    """The runner of ``module`` on ``engine``: a callable uint8 batch -> list of float32 arrays.

    Parameters
    ----------
    engine : {"torch", "onnxruntime", "openvino"}
        As chosen by :func:`~._engines.select_engine`.
    module : torch.nn.Module
        uint8 images of shape (batch, 3, crop, crop) -> ``n_outputs`` tensors.
    device : torch.device
        Where torch runs it (the graph engines run on the CPU).
    crop : int
        The input's height and width, for the export.
    precision : {"float32", "float16", "bfloat16", "int8"}, default="float32"
        As returned by :func:`~._engines.effective_precision`.
    description : mapping or None, default=None
        What determines the outputs (:func:`~._output_key.describe_output`),
        keying the exported graph in the disk cache; None keeps it in memory.
    graph : bytes or None, default=None
        A graph to run instead of the exported one (the calibrated int8 graph).
    n_outputs : int, default=1

    Returns
    -------
    TorchRunner, OnnxRuntimeRunner or OpenVinoRunner

    Examples
    --------
    >>> import torch
    >>> from sktransfer.runtime import make_runner
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> runner = make_runner("torch", net.float(), device=torch.device("cpu"), crop=2)
    >>> [out.shape for out in runner(torch.zeros(4, 3, 2, 2))]
    [(4, 3)]
    """
    if engine == "torch":
        return TorchRunner(module, device, precision)
    if engine not in ("onnxruntime", "openvino"):
        raise ValueError(f"engine must be 'torch', 'onnxruntime' or 'openvino'; got {engine!r}")
    if graph is None:
        if precision == "int8":
            raise ValueError("precision='int8' needs the graph calibrated in fit")
        graph = exported_graph(module, crop, description, n_outputs)
    if engine == "openvino":
        return OpenVinoRunner(graph, precision, n_outputs)
    return OnnxRuntimeRunner(graph)

"""OpenVINO's side of the runtime: one Core, compiled models shared by the process, per-thread requests.

OpenVINO reads the ONNX graph the runtime exports (and caches on disk,
:mod:`._graph_cache`) and compiles it for the CPU it runs on. Three
settings matter beyond speed:

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

A calibrated int8 model (an OpenVINO IR: XML text plus a weights blob) is
carried as one byte string, see :func:`pack_model`.
"""

from __future__ import annotations

import threading

import numpy as np

_OV_PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int8": "f32"}
_COMPILED = {}  # (graph digest, precision, threads) -> compiled model
_COMPILED_LOCK = threading.Lock()
_MAX_COMPILED = 8  # a few networks at a time; the oldest is dropped beyond
_CORE = None


def core():
    """The process's one ``openvino.Core`` (creating one loads the plugins)."""
    global _CORE
    with _COMPILED_LOCK:
        if _CORE is None:
            import openvino as ov

            _CORE = ov.Core()
        return _CORE


def pack_model(model) -> bytes:
    """An ``openvino.Model`` as bytes: 8-byte length of the XML, the XML, the weights."""
    import tempfile
    from pathlib import Path

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, xml, compress_to_fp16=False)
        text, weights = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()
    return len(text).to_bytes(8, "little") + text + weights


def unpack_model(data):
    """The ``openvino.Model`` :func:`pack_model` wrote."""
    import openvino as ov

    size = int.from_bytes(data[:8], "little")
    text, weights = data[8 : 8 + size], data[8 + size :]
    return core().read_model(text, ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))


def compile_config(precision, threads):
    """The CPU plugin's settings for ``precision`` (see the module docstring)."""
    return {
        "INFERENCE_PRECISION_HINT": _OV_PRECISIONS[precision],
        "INFERENCE_NUM_THREADS": int(threads),
        # One batch at a time from the extractor's loop: latency mode puts
        # every thread on that batch (one stream).
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }


def compiled_model(graph: bytes, precision: str, threads: int, packed: bool = False):
    """Compile ``graph`` (ONNX bytes, or a packed IR) once per process and precision."""
    import hashlib

    key = (hashlib.sha256(graph).hexdigest(), precision, int(threads))
    with _COMPILED_LOCK:
        found = _COMPILED.get(key)
    if found is not None:
        return found
    model = unpack_model(graph) if packed else core().read_model(graph, b"")
    compiled = core().compile_model(model, "CPU", compile_config(precision, threads))
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

    def __init__(self, compiled):
        self.compiled = compiled
        self._local = threading.local()

    def infer(self, arr):
        """Run ``arr`` (the model's one input) and return the request holding the outputs."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({0: arr})
        return request

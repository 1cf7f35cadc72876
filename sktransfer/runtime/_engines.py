"""Choosing the inference engine and the numeric precision it runs at.

Three engines run the same function (the :class:`Embedder`: uint8 images
in, float32 features out): PyTorch eager, ONNX Runtime and OpenVINO, the
latter two on the ONNX graph the library exports. On a CPU the graph
engines are faster; which one, and at which precision, is decided here, in
one place, so that the extractor and everything that builds its runner
agree.

Precision is a request, not a guarantee: a reduced precision that the
processor cannot run natively (bfloat16 without AVX512-BF16 or AMX, float16
on most x86 CPUs) would be emulated, slower than float32, so it falls back
to float32 with a warning instead.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

ENGINES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("float32", "float16", "bfloat16", "int8")

# What each graph engine needs, as pip would install it.
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
# The engines "auto" tries on a CPU, fastest first.
CPU_ORDER = ("openvino", "onnxruntime")


def _installed(module):
    return importlib.util.find_spec(module) is not None


def engine_available(engine):
    """Whether the packages an engine needs are installed (torch always is)."""
    return all(_installed(m) for m in _PACKAGES.get(engine, ()))


def quantizer_available(engine):
    """Whether int8 calibration can run for ``engine``: NNCF for OpenVINO, ORT's own tool for ORT."""
    if engine == "openvino":
        return engine_available("openvino") and _installed("nncf")
    return engine == "onnxruntime" and engine_available("onnxruntime")


def _missing_engine(engine):
    packages = " ".join(_PACKAGES[engine])
    return ImportError(f"engine={engine!r} needs the {packages} packages: pip install {packages}")


def select_engine(requested, device, exportable, precision):
    """The engine to run: ``requested`` checked, or the best available for ``"auto"``.

    Parameters
    ----------
    requested : {"auto", "torch", "onnxruntime", "openvino"}
    device : torch.device
    exportable : bool
        Whether the embedder is a plain graph (no forward hooks).
    precision : {"float32", "float16", "bfloat16", "int8"}

    Returns
    -------
    str

    Examples
    --------
    >>> import torch
    >>> from sktransfer.feature_extraction._engines import select_engine
    >>> select_engine("auto", torch.device("cpu"), exportable=False, precision="float32")
    'torch'
    """
    graph_ok = device.type == "cpu" and exportable
    if requested == "torch":
        if precision == "int8":
            raise ValueError(
                "precision='int8' needs a graph engine (engine='openvino' or 'onnxruntime'); "
                "the torch engine has no calibrated int8 path. Use engine='auto'."
            )
        return "torch"
    if requested != "auto":
        # Where the engine cannot run at all comes first: installing it would not help.
        if not graph_ok:
            raise ValueError(
                f"engine={requested!r} runs on the CPU and needs a layer-group (or default) "
                f"layer; got device={device.type!r}. Use engine='torch'."
            )
        if not engine_available(requested):
            raise _missing_engine(requested)
        if precision == "int8" and not quantizer_available(requested):
            raise ImportError(
                "precision='int8' with engine='openvino' calibrates with NNCF: pip install nncf "
                "(or use engine='onnxruntime')"
            )
        return requested
    if graph_ok:
        for engine in CPU_ORDER:
            if engine_available(engine) and (precision != "int8" or quantizer_available(engine)):
                return engine
    if precision == "int8":
        raise ValueError(
            "precision='int8' runs on the CPU with OpenVINO (and NNCF) or ONNX Runtime, for a "
            f"layer-group (or default) layer; got device={device.type!r}, exportable layer: "
            f"{exportable}, onnxruntime installed: {engine_available('onnxruntime')}"
        )
    return "torch"


@functools.lru_cache(maxsize=1)
def cpu_capabilities():
    """Reduced precisions this CPU computes natively: a subset of {"bfloat16", "float16", "int8"}.

    OpenVINO's ``OPTIMIZATION_CAPABILITIES`` when it is installed (it knows
    its own kernels), else the instruction flags torch reports.
    """
    if engine_available("openvino"):
        try:
            import openvino as ov

            caps = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            names = {"BF16": "bfloat16", "FP16": "float16", "INT8": "int8"}
            return frozenset(names[c] for c in caps if c in names)
        except Exception:  # noqa: BLE001 -- a broken plugin: fall back to the flags
            pass
    import torch

    found = {"int8"}  # int8 dot products exist on every x86-64 with SSE4/AVX2, and on ARM
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        if cpu is not None and getattr(cpu, probe, lambda: False)():
            found.add("bfloat16")
    return frozenset(found)


def effective_precision(engine, device, precision):
    """The precision the engine will run: ``precision``, or float32 with a warning.

    On a GPU, float16 and bfloat16 run under torch autocast. On a CPU a
    reduced float precision runs only where the processor has the
    instructions and the engine a native path for it (OpenVINO's inference
    precision, torch CPU autocast for bfloat16); otherwise float32, with a
    warning saying why. int8 has been checked by :func:`select_engine`.
    """
    if precision in ("float32", "int8") or device.type != "cpu":
        return precision
    native = precision in cpu_capabilities()
    engine_ok = engine == "openvino" or (engine == "torch" and precision == "bfloat16")
    if native and engine_ok:
        return precision
    why = (
        f"this CPU has no native {precision} instructions"
        if not native
        else f"the {engine} engine has no fast {precision} CPU path"
    )
    warnings.warn(
        f"precision={precision!r} runs in float32 here: {why}, and emulating it would be slower "
        "than float32. Results are float32.",
        UserWarning,
        stacklevel=4,
    )
    return "float32"


def make_runner(engine, embedder, device, precision, description, graph=None):
    """The callable uint8 batch tensor -> float32 numpy features for ``engine``.

    ``graph`` is the calibrated int8 graph (bytes) when ``precision`` is int8.
    """
    if engine == "openvino":
        from ._openvino_engine import OpenVinoRunner

        return OpenVinoRunner(embedder, description, precision, graph=graph)
    if engine == "onnxruntime":
        from ._onnx_engine import OnnxRunner

        return OnnxRunner(embedder, description, graph=graph)
    from ._torch_engine import TorchRunner

    return TorchRunner(embedder, device, precision)

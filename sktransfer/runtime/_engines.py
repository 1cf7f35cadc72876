"""Choosing the inference engine and the numeric precision it runs at.

Three engines run the same frozen network (the extractor's embedder, the
fine-tuner's frozen prefix): PyTorch eager, ONNX Runtime and OpenVINO, the
latter two on the ONNX graph the runtime exports. On a CPU the graph
engines are faster; which one, and at which precision, is decided here, in
one place, so that every caller agrees on the order and on the errors.

Precision is a request, not a guarantee: a reduced precision that the
processor cannot run natively (bfloat16 without AVX512-BF16 or AMX, float16
on most x86 CPUs) would be emulated, slower than float32, so it falls back
to float32 with a warning instead.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ENGINES = ("torch", "onnxruntime", "openvino")
# The engines that run an exported ONNX graph (on the CPU).
GRAPH_ENGINES = ("onnxruntime", "openvino")
PRECISIONS = ("float32", "float16", "bfloat16", "int8")

# What each graph engine needs, as pip would install it.
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
# The engines "auto" tries on a CPU, fastest first.
CPU_ORDER = ("openvino", "onnxruntime")


def _installed(module):
    return importlib.util.find_spec(module) is not None


def engine_available(engine: str) -> bool:
    """Whether the packages an engine needs are installed (torch always is)."""
    return all(_installed(m) for m in _PACKAGES.get(engine, ()))


def quantizer_available(engine: str) -> bool:
    """Whether int8 calibration can run for ``engine``: NNCF for OpenVINO, ORT's own tool for ORT."""
    if engine == "openvino":
        return engine_available("openvino") and _installed("nncf")
    return engine == "onnxruntime" and engine_available("onnxruntime")


def missing_engine_error(engine: str) -> ImportError:
    """The one ImportError for a graph engine whose packages are not installed."""
    packages = _PACKAGES[engine]
    return ImportError(
        f"engine={engine!r} needs the {' and '.join(packages)} packages: pip install {' '.join(packages)} "
        "(or use engine='auto' or 'torch')"
    )


def unrunnable_engine_error(engine: str, device: torch.device, exportable: bool) -> ValueError:
    """The one ValueError for a graph engine asked for where it cannot run."""
    where = f"here the network is on {device.type!r}"
    if not exportable:
        where += " and its layer needs forward hooks (a layer-group or the default layer exports)"
    return ValueError(f"engine={engine!r} runs an exported graph on the CPU; {where}. Use engine='auto' or 'torch'.")


def select_engine(requested: str, device: torch.device, *, exportable: bool = True, precision: str = "float32") -> str:
    """The engine to run a frozen network with: ``requested`` checked, or the best one for ``"auto"``.

    One order for every caller: on a CPU, OpenVINO, then ONNX Runtime, the
    first installed (and, for int8, able to calibrate), else torch; on a GPU
    torch.

    Parameters
    ----------
    requested : {"auto", "torch", "onnxruntime", "openvino"}
    device : torch.device
        Where the network runs; the graph engines run on the CPU only.
    exportable : bool, default=True
        What the caller allows a graph engine to run: whether its network
        exports as one plain graph (an extractor's layer read through a
        forward hook does not).
    precision : {"float32", "float16", "bfloat16", "int8"}, default="float32"
        int8 needs a graph engine that can calibrate.

    Returns
    -------
    str
        One of :data:`ENGINES`.

    Raises
    ------
    ValueError
        A graph engine named where it cannot run (:func:`unrunnable_engine_error`),
        or int8 where no graph engine can.
    ImportError
        A graph engine named that is not installed (:func:`missing_engine_error`).

    Examples
    --------
    >>> import torch
    >>> from sktransfer.runtime import select_engine
    >>> select_engine("auto", torch.device("cpu"), exportable=False)
    'torch'
    >>> select_engine("auto", torch.device("cuda"))
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
            raise unrunnable_engine_error(requested, device, exportable)
        if not engine_available(requested):
            raise missing_engine_error(requested)
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


def reselect_engine(chosen: str, device: torch.device, *, exportable: bool = True) -> str:
    """``chosen`` if it is installed here, else what ``"auto"`` chooses here.

    For a choice made on another machine (an unpickled estimator): a
    float32 graph computes the same on every engine, so an engine that
    ``"auto"`` chose there and that is missing here is replaced by this
    machine's best. Callers that named their engine keep it (and get
    :func:`missing_engine_error` from :func:`select_engine`).

    Parameters
    ----------
    chosen : str
        One of :data:`ENGINES`.
    device : torch.device
    exportable : bool, default=True
        As for :func:`select_engine`.

    Returns
    -------
    str
    """
    if chosen == "torch" or engine_available(chosen):
        return chosen
    return select_engine("auto", device, exportable=exportable)


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> frozenset:
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


def effective_precision(engine: str, device: torch.device, precision: str) -> str:
    """The precision the engine will run: ``precision``, or float32 with a warning.

    On a GPU, float16 and bfloat16 run under torch autocast. On a CPU a
    reduced float precision runs only where the processor has the
    instructions and the engine a native path for it (OpenVINO's inference
    precision, torch CPU autocast for bfloat16); otherwise float32, with a
    warning saying why. int8 has been checked by :func:`select_engine`.

    Parameters
    ----------
    engine : str
        As chosen by :func:`select_engine`.
    device : torch.device
    precision : {"float32", "float16", "bfloat16", "int8"}
        The precision asked for.

    Returns
    -------
    str
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


def inference_batch_size(batch_size: int | str, device: torch.device) -> int:
    """Images per forward pass of a frozen network: ``batch_size``, or for ``"auto"`` the device's default.

    On a CPU small batches keep the decoded images of one batch in cache
    and let decoding overlap the network sooner; a GPU wants larger ones.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.runtime import inference_batch_size
    >>> inference_batch_size("auto", torch.device("cpu")), inference_batch_size(16, torch.device("cpu"))
    (8, 16)
    """
    if batch_size != "auto":
        return int(batch_size)
    return 8 if device.type == "cpu" else 64

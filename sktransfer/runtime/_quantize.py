"""Static int8 quantization of the exported graph, calibrated on fit's images.

Static quantization needs the range of every activation, measured on
representative inputs: the images passed to ``fit`` are exactly that, so an
int8 extractor's ``fit`` decodes them (at most :data:`MAX_CALIBRATION`,
spread over the input) and calibrates:

* OpenVINO: ``nncf.quantize`` on the OpenVINO model, kept as an IR, with
  the convolutions that lose most under int8 kept in float32 (see
  :func:`float32_layers`: the first, depthwise and linear convolutions of
  depthwise-separable networks);
* ONNX Runtime: ``onnxruntime.quantization.quantize_static``, QDQ format,
  per-channel weights, unsigned activations and signed weights (U8S8), or
  unsigned weights (U8U8) on x86 CPUs without VNNI, where U8S8 saturates
  (see :func:`int8_saturates`).

The result is cached on disk under a key made of everything that changes
it: the float32 graph's description, the engine, the quantizer's version
and settings, and the SHA-256 of the decoded calibration images (the
images themselves are not kept). A second ``fit`` on the same images, in
this process or another, loads it instead of calibrating again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..image import decode_all
from ._graphs import cached_graph, exported_graph, graph_key

if TYPE_CHECKING:
    import torch

MAX_CALIBRATION = 300  # NNCF's default subset size; more adds time, not accuracy
MIN_CALIBRATION = 32  # below this the activation ranges are poorly estimated


def calibration_images(items: list, transform: Callable, *, num_workers: int, on_error: str) -> np.ndarray:
    """Decode up to MAX_CALIBRATION items, evenly spread, as a uint8 array (n, 3, H, W).

    Parameters
    ----------
    items : list
        Checked images (``check_images``), e.g. those passed to ``fit``.
    transform : callable
        The network's PIL preprocessing (``preprocessing.pil_transform()``).
    num_workers : int
        Decoding threads.
    on_error : {"raise", "nan"}
        Unreadable images raise, or are left out.

    Returns
    -------
    ndarray of shape (n, 3, H, W), uint8
    """
    n = len(items)
    picked = np.unique(np.linspace(0, n - 1, min(n, MAX_CALIBRATION)).round().astype(int))
    chosen = [items[i] for i in picked]
    decoded, _ = decode_all(
        chosen,
        transform,
        num_workers=num_workers,
        on_error=on_error,
        draft_size=getattr(transform, "draft_size", None),
        stack=False,
    )
    good = [t.numpy() for t in decoded if t is not None]
    if not good:
        raise ValueError("precision='int8' calibrates on the images passed to fit, and none could be read")
    if len(good) < MIN_CALIBRATION:
        warnings.warn(
            f"precision='int8' calibrates on the images passed to fit: got {len(good)}, at least "
            f"{MIN_CALIBRATION} are advised for stable activation ranges",
            UserWarning,
            stacklevel=4,
        )
    return np.stack(good)


def calibration_key(images: np.ndarray) -> str:
    """The content key of a calibration set (what is kept instead of the images)."""
    digest = hashlib.sha256(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def _versions(*packages):
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def int8_saturates():
    """Whether this CPU's int8 dot products saturate (x86 without VNNI).

    Without VNNI, u8 x s8 products are summed in pairs into int16 (AVX2's
    ``vpmaddubsw``), which overflows for large weights and activations; the
    error compounds through a deep network. ONNX Runtime's unsigned
    weights (U8U8, other kernels) or NNCF's overflow fix on every layer
    avoid it.
    """
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return True  # unknown x86: the safe choice
    return "avx512_vnni" not in flags and "avx_vnni" not in flags and "amx_int8" not in flags


def shape_only_nodes(model) -> list[str]:
    """Names of the nodes of an ONNX model that compute shapes, not activations.

    A node is on the activation path when one of its inputs is a graph input
    or the output of such a node, except through ``Shape``, whose output is
    a shape whatever the values. The rest (shape arithmetic, such as timm's
    TF 'SAME' padding computing ``ceil(size / stride)`` in float) must not
    be quantized: ONNX Runtime's quantizer would round the padding amounts
    through uint8 and a cast to int64, padding by the wrong amount.
    """
    active = {i.name for i in model.graph.input}
    excluded = []
    for node in model.graph.node:  # ONNX nodes are in topological order
        if node.op_type != "Shape" and any(name in active for name in node.input):
            active.update(node.output)
        else:
            excluded.append(node.name)
    return excluded


def quantize_onnx(graph, images):
    """ONNX graph bytes -> QDQ int8 graph bytes (ONNX Runtime's static quantizer)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"images": images[i : i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            # U8S8 saturates without VNNI; U8U8 uses kernels that do not.
            weight_type=QuantType.QUInt8 if int8_saturates() else QuantType.QInt8,
            nodes_to_exclude=shape_only_nodes(onnx.load_from_string(graph)),
        )
        return dst.read_bytes()


@contextlib.contextmanager
def _nncf_warnings_only():
    """NNCF's logger at WARNING for one call: a fit should not print a line per float32 layer.

    NNCF logs each ignored layer at INFO; a user's own NNCF level is restored
    afterwards (a logger's level is process-wide, so it is changed only for
    the calibration's duration).
    """
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        nncf_logger.setLevel(level)


def fold_constants(model):
    """Fold constant subgraphs of an ``openvino.Model`` in place; returns it.

    The exported graph reshapes each convolution's bias through a shape
    computed at run time (``Reshape(Const, Concat(ShapeOf ...))``). NNCF does
    not recognise that as a bias and silently skips its bias correction;
    folded, the bias is a plain constant.
    """
    from openvino import passes

    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(model)
    return model


# ------------------------------------------------- which layers stay float32
#
# Which convolutions of a network stay in float32 when it is quantized to int8.
#
# Naive static int8 (every convolution quantized) loses little on plain
# networks such as ResNets, but depthwise-separable networks (MobileNet,
# EfficientNet-Lite) lose much more: the error of each quantized layer is
# small, yet it accumulates over dozens of thin layers (removing any single
# quantizer barely helps). Measured layer group by layer group, three kinds
# of convolution carry most of it in such networks, and all three are
# recognised from the graph's structure alone (no layer names):
#
# * the **first** convolution, which sees the normalised pixels: its input
#   quantization error is inherited by every later layer, and on CPUs
#   without VNNI its weights also lose a bit to the overflow fix;
# * **depthwise** convolutions (one input channel per group): each output
#   is a sum of a handful of products, so rounding errors do not average
#   out;
# * **linear** convolutions, whose output reaches no activation (the
#   projections of inverted residual blocks, "linear bottlenecks"): their
#   outputs are signed, heavy-tailed, and summed into the residual stream
#   that every later block reads.
#
# The remaining convolutions (in such networks the 1x1 expansions, most of
# the arithmetic) stay int8, so the quantized network is still faster than
# float32. A network without depthwise convolutions keeps every convolution
# in int8: there the loss is already small, and the first convolution (a
# large 7x7 one in a ResNet) is too costly to give back to float32.
#
# The rule runs on an ``openvino.Model`` (the names are the ones NNCF's
# ``IgnoredScope`` expects).

# Written into the int8 graph's cache key: changing the rule must recalibrate.
RULE = "float32 where depthwise: first, depthwise and linear convolutions"

_CONVOLUTIONS = ("Convolution", "GroupConvolution")
_ACTIVATIONS = frozenset(
    {
        "Relu",
        "Clamp",
        "Maximum",
        "Minimum",
        "PRelu",
        "Elu",
        "Gelu",
        "Swish",
        "HSwish",
        "HSigmoid",
        "Sigmoid",
        "Mish",
        "SoftPlus",
        "Tanh",
    }
)
# Element-wise ops between a convolution and its activation: the bias, a
# folded normalisation, the residual sum. The walk passes through them.
_ELEMENTWISE = frozenset({"Add", "Multiply", "Subtract", "Divide"})
# Shape computations (dynamic padding) read a tensor without using its values.
_SHAPE_ONLY = frozenset({"ShapeOf"})


def _consumers(node):
    return [
        target.get_node()
        for output in node.outputs()
        for target in output.get_target_inputs()
        if target.get_node().get_type_name() not in _SHAPE_ONLY
    ]


def is_depthwise(conv):
    """A grouped convolution with one input channel per group."""
    if conv.get_type_name() != "GroupConvolution":
        return False
    weights = conv.input(1).get_partial_shape()  # (groups, out/groups, in/groups, kh, kw)
    return weights.rank.is_static and weights[2].is_static and weights[2].get_length() == 1


def is_linear(conv):
    """Whether no activation reads the convolution's output, through element-wise ops."""
    seen, frontier = set(), _consumers(conv)
    while frontier:
        node = frontier.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        kind = node.get_type_name()
        if kind in _ACTIVATIONS:
            return False
        if kind in _ELEMENTWISE:
            frontier.extend(_consumers(node))
    return True


def float32_layers(model):
    """Names of the convolutions of ``model`` (an ``openvino.Model``) to keep in float32.

    Parameters
    ----------
    model : openvino.Model

    Returns
    -------
    list of str
        In a network with depthwise convolutions: the first convolution,
        the depthwise ones and the linear ones, in graph order. Otherwise
        empty.
    """
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in _CONVOLUTIONS]
    if not any(is_depthwise(conv) for conv in convs):
        return []
    keep = [conv for i, conv in enumerate(convs) if i == 0 or is_depthwise(conv) or is_linear(conv)]
    return [conv.get_friendly_name() for conv in keep]


def quantize_openvino(graph, images):
    """ONNX graph bytes -> packed int8 OpenVINO IR (NNCF post-training quantization)."""
    import nncf

    from ._runners import core, pack_model

    model = fold_constants(core().read_model(graph, b""))
    dataset = nncf.Dataset([images[i : i + 1] for i in range(len(images))])
    with warnings.catch_warnings(), _nncf_warnings_only():
        warnings.simplefilter("ignore")  # NNCF's progress and deprecation chatter
        settings = dict(NNCF_SETTINGS)
        kept = float32_layers(model)
        if kept:
            settings["ignored_scope"] = nncf.IgnoredScope(names=kept)
        if int8_saturates():
            settings.setdefault(
                "advanced_parameters", nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
            )
        quantized = nncf.quantize(model, dataset, subset_size=len(images), **settings)
    return pack_model(quantized)


# Settings measured on EfficientNet-Lite0 and ResNet-18 (benchmarks/RESULTS.md);
# recorded in the cache key so that changing them recalibrates.
NNCF_SETTINGS = {}


def calibrated_graph(
    engine: str, module: torch.nn.Module, crop: int, description: Mapping | None, images: np.ndarray
) -> tuple[bytes, str]:
    """The int8 graph of ``module`` for ``engine``, calibrated on ``images``: cached, or made now.

    Parameters
    ----------
    engine : {"onnxruntime", "openvino"}
    module : torch.nn.Module
        The frozen network (one output), exported at float32 first.
    crop : int
        The input's height and width.
    description : mapping or None
        What determines the float32 graph's output
        (:func:`~._output_key.describe_output`); None: kept in memory only.
    images : ndarray of shape (n, 3, crop, crop), uint8
        From :func:`calibration_images`.

    Returns
    -------
    graph : bytes
        ONNX (onnxruntime) or a packed IR (openvino).
    key : str
        The calibration set's content key.
    """
    calib = calibration_key(images)
    if engine == "openvino":
        quantize, tools = quantize_openvino, _versions("nncf", "openvino")
        settings = {**{k: str(v) for k, v in NNCF_SETTINGS.items()}, "float32_layers": RULE, "constants": "folded"}
    else:
        quantize, tools, settings = quantize_onnx, _versions("onnxruntime"), {"shape_nodes": "float32"}
    settings["saturation_fix"] = int8_saturates()
    key = None
    if description is not None:
        key = graph_key(
            {
                **description,
                "engine": engine,
                "precision": "int8",
                "calibration": calib,
                "quantizer": tools,
                "settings": settings,
            }
        )
    return cached_graph(key, lambda: quantize(exported_graph(module, crop, description), images)), calib

"""int8 quantization keeps the sensitive convolutions of depthwise networks in float32."""

import numpy as np
import pytest
import torch
from torch import nn

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import Backbone
from sktransfer.backbones._base import Lambda, Preprocessing, global_avg
from sktransfer.runtime import _quantize

pytest.importorskip("nncf")  # the OpenVINO int8 path is an optional extra
ov = pytest.importorskip("openvino")

FEW = pytest.mark.filterwarnings("ignore:precision='int8' calibrates on the images passed to fit")
# OpenVINO runs on the CPU: pinned, so a GPU machine tests it too.
TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, device="cpu")


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection, residual sum."""

    def __init__(self, channels, expand=4):
        super().__init__()
        hidden = channels * expand
        self.expand = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.ReLU6())
        self.project = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        return x + self.project(self.depthwise(self.expand(x)))


def tiny_mobilenet():
    torch.manual_seed(0)
    groups = [
        ("stem", nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU6())),
        ("stage1", InvertedResidual(8)),
        ("head", nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU6())),
    ]
    return Backbone(
        name="tiny_mobilenet",
        groups=groups,
        pool=Lambda(global_avg, "global_avg"),
        head=None,
        num_features=16,
        preprocessing=Preprocessing(resize_size=36, crop_size=32),
    ).eval()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(5).integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)


def float32_model(est):
    from sktransfer.runtime._runners import core

    return core().read_model(float32_graph(est), b"")


def convolutions(model):
    return {
        op.get_friendly_name(): op
        for op in model.get_ordered_ops()
        if op.get_type_name() in ("Convolution", "GroupConvolution")
    }


def reaches_int8(output, depth=6):
    """Whether a convolution input comes from a FakeQuantize or an 8-bit constant, through layout ops."""
    node = output.get_node()
    if node.get_type_name() == "FakeQuantize":
        return True
    if node.get_type_name() == "Constant":
        return node.get_element_type().get_type_name() in ("i8", "u8")
    return depth > 0 and any(reaches_int8(value, depth - 1) for value in node.input_values())


def quantized_convolutions(est):
    from sktransfer.runtime._runners import unpack_model

    int8 = unpack_model(est._int8_graph)
    return {
        name: reaches_int8(conv.input_value(0)) and reaches_int8(conv.input_value(1))
        for name, conv in convolutions(int8).items()
    }


@FEW
def test_depthwise_network_keeps_first_depthwise_and_linear_convolutions_in_float32(images):
    est = PretrainedFeatureExtractor(
        model=tiny_mobilenet(), engine="openvino", precision="int8", batch_size=4, num_workers=0, device="cpu"
    ).fit(images)
    fp32 = float32_model(est)
    kept = _quantize.float32_layers(fp32)
    kinds = {name: (conv.get_type_name(), _quantize.is_linear(conv)) for name, conv in convolutions(fp32).items()}
    # stem (first), the depthwise 3x3 and the linear projection; not the expansion or the head.
    assert [kinds[name] for name in kept] == [
        ("Convolution", False),
        ("GroupConvolution", False),
        ("Convolution", True),
    ]
    quantized = quantized_convolutions(est)
    assert set(quantized) == set(kinds)
    assert {name for name, q in quantized.items() if not q} == set(kept)
    assert sum(quantized.values()) == 2  # the expansion and the head run in int8


@FEW
def test_calibration_logs_no_line_per_float32_layer_and_restores_nncf_level(images, capsys, caplog):
    import logging

    nncf_logger = logging.getLogger("nncf")
    caplog.set_level(logging.INFO, logger="nncf")  # INFO would be shown (restored by caplog after the test)
    level = nncf_logger.level
    images = images[:10]  # a calibration set of its own: calibrated now, not read from a cache
    est = PretrainedFeatureExtractor(
        model=tiny_mobilenet(), engine="openvino", precision="int8", batch_size=4, num_workers=0, device="cpu"
    ).fit(images)
    assert est._int8_graph is not None
    out = capsys.readouterr()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("nncf") and r.levelno < logging.WARNING]
    assert "quantizer" not in out.out + out.err and not logged
    assert nncf_logger.level == level


@FEW
def test_network_without_depthwise_convolutions_is_quantized_throughout(images):
    est = PretrainedFeatureExtractor(**TINY, engine="openvino", precision="int8").fit(images)
    assert _quantize.float32_layers(float32_model(est)) == []
    quantized = quantized_convolutions(est)
    assert len(quantized) == 4 and all(quantized.values())


def test_residual_sum_followed_by_relu_is_not_linear():
    # ResNet's second convolution of a block reaches its ReLU only after the
    # bias and the residual sum; a projection whose sum feeds no activation is linear.
    import openvino.opset13 as ops

    x = ops.parameter([1, 4, 8, 8], np.float32)
    weights = ops.constant(np.ones((4, 4, 1, 1), np.float32))
    bias = ops.constant(np.zeros((1, 4, 1, 1), np.float32))
    conv = ops.convolution(x, weights, [1, 1], [0, 0], [0, 0], [1, 1])
    block = ops.relu(ops.add(ops.add(conv, bias), x))
    projection = ops.convolution(block, weights, [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov.Model([ops.add(ops.add(projection, bias), block)], [x])
    assert not _quantize.is_linear(conv)
    assert _quantize.is_linear(projection)
    # No depthwise convolution: nothing is kept in float32.
    assert _quantize.float32_layers(model) == []


def test_recipe_is_part_of_the_int8_cache_key(monkeypatch, images):
    keys = []
    monkeypatch.setattr(_quantize, "cached_graph", lambda key, make: keys.append(key) or (b"", None))
    monkeypatch.setattr(_quantize, "graph_key", lambda d: repr(sorted(d.items())))
    description = {"model": "m"}
    _quantize.calibrated_graph("openvino", None, 32, description, images[:2])
    monkeypatch.setattr(_quantize, "RULE", "another rule")
    _quantize.calibrated_graph("openvino", None, 32, description, images[:2])
    assert "float32_layers" in keys[0] and keys[0] != keys[1]


def float32_graph(est):
    """The fitted extractor's exported float32 graph (ONNX bytes)."""
    from sktransfer.runtime import exported_graph

    return exported_graph(est._embedder, est.backbone_.preprocessing.crop_size, est._graph_description())

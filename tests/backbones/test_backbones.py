"""Backbones: names, weights resolution, and layer groups that compute the original network."""

import pytest
import torch
import torchvision
from torch import nn

from sktransfer.backbones import Backbone, Preprocessing, get_backbone, list_backbones, make_tiny_backbone
from sktransfer.backbones._torchvision import splitter_for
from sktransfer.backbones._weights import build_torchvision, preprocessing_from_enum, torchvision_weights_enum

# The smallest member of every family: each split must reproduce the
# original forward pass exactly, and its groups must hold every parameter.
FAMILY_REPRESENTATIVES = [
    "alexnet",
    "vgg11",
    "resnet18",
    "squeezenet1_1",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "mnasnet0_5",
    "shufflenet_v2_x0_5",
    "regnet_x_400mf",
    "googlenet",
    "inception_v3",
    "convnext_tiny",
    "swin_t",
    "maxvit_t",
    "vit_b_32",
]


def test_list_backbones_covers_torchvision_and_offline_model():
    names = list_backbones()
    tv = torchvision.models.list_models(module=torchvision.models)
    assert set(tv) <= set(names)
    assert "efficientnet_lite0" in names
    for classic in [
        "alexnet",
        "vgg16",
        "vgg19",
        "googlenet",
        "inception_v3",
        "resnet152",
        "mobilenet_v3_large",
        "densenet201",
    ]:
        assert classic in names


def test_every_torchvision_family_has_a_splitter():
    for name in torchvision.models.list_models(module=torchvision.models):
        assert callable(splitter_for(name)), name


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
def test_split_reproduces_the_original_network(name):
    torch.manual_seed(0)
    net, pre = build_torchvision(name, None)
    net.eval()
    # Small inputs where the architecture allows; ViT and MaxViT need theirs.
    size = {"inception_v3": 80, "vit_b_32": 224, "maxvit_t": 224}.get(name, 64)
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        expected = net(x)
    spec = splitter_for(name)(net)
    bb = Backbone.from_spec(name, spec, pre).eval()
    with torch.inference_mode():
        emb = bb.forward_embedding(x)
        logits = bb(x)
    assert emb.shape == (2, bb.num_features)
    if bb.head is not None:
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    # Every parameter of the network is in exactly one layer group or the head.
    in_groups = [p for g in bb.layer_groups for p in bb.layer_group(g).parameters()]
    in_head = list(bb.head.parameters()) if bb.head is not None else []
    ids = [id(p) for p in in_groups + in_head]
    assert len(ids) == len(set(ids))
    expected_ids = {id(p) for p in net.parameters()}
    if bb.head is None:
        # SqueezeNet's 1x1-conv classifier pools after its ReLU: no linear
        # head can stand for it, and transfer replaces it anyway.
        expected_ids -= {id(p) for p in net.classifier.parameters()}
    assert set(ids) == expected_ids


def test_layer_groups_of_classic_networks():
    assert get_backbone("resnet18", weights=None).layer_groups == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert get_backbone("vgg11", weights=None).layer_groups[-1] == "pre_logits"


def test_preprocessing_comes_from_the_weights_metadata():
    inc = preprocessing_from_enum(torchvision_weights_enum("inception_v3", "DEFAULT"))
    assert (inc.resize_size, inc.crop_size) == (342, 299)
    r50v2 = preprocessing_from_enum(torchvision_weights_enum("resnet50", "IMAGENET1K_V2"))
    assert (r50v2.resize_size, r50v2.crop_size, r50v2.interpolation) == (232, 224, "bilinear")
    vit = preprocessing_from_enum(torchvision_weights_enum("vit_h_14", "IMAGENET1K_SWAG_E2E_V1"))
    assert (vit.crop_size, vit.interpolation) == (518, "bicubic")
    # Random init still gets the architecture's input size.
    assert get_backbone("inception_v3", weights=None).preprocessing.crop_size == 299


def test_unknown_weights_name_lists_the_options():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        torchvision_weights_enum("resnet18", "IMAGENET_V9")


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet17'.*list_backbones"):
        get_backbone("resnet17")
    with pytest.raises(TypeError, match="model must be"):
        get_backbone(3)


def test_named_weights_take_the_torchvision_download_path(monkeypatch):
    # The real code path calls torchvision's weights loader (torch.hub
    # download + cache); here it is intercepted so no network is used.
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append((self.url, kwargs))
        return torchvision.models.resnet18(weights=None).state_dict()

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", fake_get_state_dict)
    bb = get_backbone("resnet18", weights="IMAGENET1K_V1")
    assert calls and calls[0][0].startswith("https://download.pytorch.org/models/resnet18")
    assert bb.preprocessing.crop_size == 224


def test_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    bb = get_backbone("resnet18", weights=str(path))
    torch.testing.assert_close(bb.layer_group("stem")[0].weight, source.conv1.weight)
    torch.testing.assert_close(bb.head.weight, source.fc.weight)
    # Checkpoint wrappers and DataParallel prefixes are unwrapped.
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, wrapped)
    bb2 = get_backbone("resnet18", weights=wrapped)
    torch.testing.assert_close(bb2.head.bias, source.fc.bias)


def test_googlenet_checkpoint_with_aux_heads_loads(tmp_path):
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(net.state_dict(), path)
    bb = get_backbone("googlenet", weights=path)
    assert bb.input_transform is not None  # pretrained GoogLeNet re-normalises its input


def test_weights_file_that_does_not_fit_names_the_keys(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"(?s)does not fit.*unexpected keys: layer1\.2.*\(96 in all\)"):
        get_backbone("resnet18", weights=path)
    bad = tmp_path / "not_weights.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read weights file"):
        get_backbone("resnet18", weights=bad)
    with pytest.raises(FileNotFoundError, match="weights file not found: .*missing.pth"):
        get_backbone("resnet18", weights=str(tmp_path / "missing.pth"))


def test_forward_trunk_runs_a_range_of_groups():
    bb = make_tiny_backbone()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        mid = bb.forward_trunk(x, stop="stage1")
        rest = bb.forward_trunk(mid, start="stage2")
        full = bb.forward_trunk(x)
    torch.testing.assert_close(rest, full)
    with pytest.raises(KeyError, match="no layer group 'stage9'"):
        bb.layer_group("stage9")


def test_tiny_backbone_is_seeded():
    a, b = make_tiny_backbone(seed=3), make_tiny_backbone(seed=3)
    torch.testing.assert_close(a.head.weight, b.head.weight)


def test_user_module_becomes_a_single_group():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    module.preprocessing = Preprocessing(resize_size=40, crop_size=32)
    bb = get_backbone(module)
    assert bb.layer_groups == ["body"] and bb.preprocessing.crop_size == 32
    with torch.inference_mode():
        assert bb.forward_embedding(torch.randn(1, 3, 32, 32)).shape == (1, 4)


@pytest.mark.slow
def test_intermediate_layers_of_channels_last_and_token_networks():
    from sktransfer.feature_extraction._embedder import Embedder

    swin = get_backbone("swin_t", weights=None)
    assert swin.group_formats["stage2"] == "nhwc"
    x = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    with torch.inference_mode():
        assert Embedder(swin, "stage2").eval()(x).shape == (2, 192)
        assert Embedder(swin, None, "max").eval()(x).shape == (2, 768)
    vit = get_backbone("vit_b_32", weights=None)
    x = torch.zeros(1, 3, 224, 224, dtype=torch.uint8)
    with torch.inference_mode():
        token = Embedder(vit, "blocks2").eval()(x)
        avg = Embedder(vit, "blocks2", "avg").eval()(x)
    assert token.shape == avg.shape == (1, 768) and not torch.allclose(token, avg)

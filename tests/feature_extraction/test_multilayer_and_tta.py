"""Multi-layer features (layer=[...]) and flip test-time augmentation."""

import numpy as np
import pytest
import torch

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import make_tiny_backbone
from sktransfer.feature_extraction import Embedder
from sktransfer.selection._shared_pass import extract_shared


def _tiny(**params):
    return PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch", **params)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


def test_layer_list_concatenates_each_layers_features(images):
    multi = _tiny(layer=["stage2", "stage1"], pooling="gem").fit_transform(images)
    parts = [_tiny(layer=name, pooling="gem").fit_transform(images) for name in ("stage2", "stage1")]
    np.testing.assert_allclose(multi, np.hstack(parts), rtol=1e-5, atol=1e-6)
    assert multi.shape[1] == 32 + 16


def test_layer_list_mixes_groups_and_modules():
    backbone = make_tiny_backbone().eval()
    module = next(
        n for n, m in backbone.named_modules() if n.startswith("groups.stage1.") and isinstance(m, torch.nn.Conv2d)
    )
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        multi = Embedder(backbone, ["stage2", module]).eval()(x)
        alone = [Embedder(backbone, name).eval()(x) for name in ("stage2", module)]
    torch.testing.assert_close(multi, torch.cat(alone, dim=1))
    assert not Embedder(backbone, ["stage2", module]).exportable
    assert Embedder(backbone, ["stage2", "stage1"]).exportable


def test_flip_tta_is_the_mean_of_image_and_mirror(images):
    flipped = np.ascontiguousarray(images[:, :, ::-1])
    plain = _tiny(layer="stage1").fit(images)
    expected = (plain.transform(images) + plain.transform(flipped)) / 2
    got = _tiny(layer="stage1", tta="flip").fit_transform(images)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # A mirror-symmetric image set gives the plain features back.
    symmetric = np.concatenate([images[:, :, :16], images[:, :, :16][:, :, ::-1]], axis=2)
    np.testing.assert_allclose(
        _tiny(tta="flip").fit_transform(symmetric), _tiny().fit_transform(symmetric), rtol=1e-4, atol=1e-5
    )
    assert not np.allclose(got, plain.transform(images))


def test_flip_tta_with_onnx_matches_torch(images, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")  # an optional engine
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))  # graphs go to a throwaway cache
    a = _tiny(layer=["stage1", "stage2"], tta="flip").fit_transform(images)
    for n in (len(images), 1):  # the exported graph keeps the batch size free
        b = PretrainedFeatureExtractor(
            model="tiny_convnet",
            weights=None,
            num_workers=0,
            engine="onnxruntime",
            layer=["stage1", "stage2"],
            tta="flip",
            batch_size=n,
        ).fit_transform(images)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_shared_pass_applies_flip(images):
    feats, _ = extract_shared([_tiny(layer="stage1", tta="flip")], images, with_source=False)
    np.testing.assert_allclose(feats[0], _tiny(layer="stage1", tta="flip").fit_transform(images), rtol=1e-5, atol=1e-6)


def test_graph_description_tells_tta_and_layers_apart(images):
    a = _tiny(layer=["stage1", "stage2"]).fit(images)._graph_description()
    b = _tiny(layer=["stage1", "stage2"], tta="flip").fit(images)._graph_description()
    assert a["tta"] is None and b["tta"] == "flip" and a["layer"] == ["stage1", "stage2"]


@pytest.mark.parametrize(
    "params, error, fragment",
    [
        ({"layer": []}, ValueError, "empty list"),
        ({"layer": ["stage1", "stage1"]}, ValueError, "names a layer twice"),
        ({"layer": ["stage1", "nope"]}, ValueError, "nope"),
        ({"tta": "rotate"}, ValueError, "tta"),
    ],
)
def test_bad_layer_lists_and_tta(images, params, error, fragment):
    with pytest.raises(error, match=fragment):
        _tiny(**params).fit(images)

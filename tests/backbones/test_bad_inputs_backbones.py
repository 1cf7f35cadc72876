"""Bad inputs and faults of saved backbones, one row each.

Each row is (id, fault, expected): ``fault(ctx)`` sets the fault up and runs
the code under test; ``expected`` is either ``Raises(type, fragment)`` or a
``Policy(check)`` whose ``check(ctx, result)`` asserts the documented
behaviour. Most are about networks saved by name (without their tensors):
whatever changed since, they must never embed with other weights.
"""

import pickle
import urllib.error
import warnings
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from _catalogue import Policy, Raises, assert_catalogue, check_row

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import Preprocessing, get_backbone, make_tiny_backbone
from sktransfer.backbones._persist import backbone_from_recipe, backbone_recipe, check_recipe


@dataclass
class Ctx:
    tmp: object
    images: list


def _fitted_on_a_file(ctx, seed=0):
    torch.manual_seed(seed)
    path = ctx.tmp / "squeeze.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    est = PretrainedFeatureExtractor(model="squeezenet1_1", weights=str(path), engine="torch", num_workers=0)
    return est.fit(ctx.images), path


def _rewritten_file(ctx):
    est, path = _fitted_on_a_file(ctx)
    blob = pickle.dumps(est)
    torch.manual_seed(1)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    return pickle.loads(blob).transform(ctx.images)


def _removed_file(ctx):
    est, path = _fitted_on_a_file(ctx)
    blob = pickle.dumps(est)
    path.unlink()
    return pickle.loads(blob).transform(ctx.images)


def _same_file_again(ctx):
    est, path = _fitted_on_a_file(ctx)
    blob = pickle.dumps(est)
    path.write_bytes(path.read_bytes())  # rewritten with the same bytes: new stat, same content
    return est.transform(ctx.images), pickle.loads(blob).transform(ctx.images), len(blob)


def _equal_and_small(ctx, result):
    before, after, size = result
    np.testing.assert_array_equal(after, before)
    assert size < 100_000


def _modified_network(ctx):
    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, engine="torch", num_workers=0)
    est.fit(ctx.images)
    with torch.no_grad():
        next(est.backbone_.parameters()).add_(1.0)  # changed after fitting: no longer the named weights
    return pickle.loads(pickle.dumps(est)).transform(ctx.images)


def _named(**changes):
    recipe = backbone_recipe(make_tiny_backbone(), "tiny_convnet", None, tensors=False)
    return {**recipe, **changes}


# ------------------------------------------------------------------ timm / hub


def _uncached_revision(ctx):
    return get_backbone("timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k@v2.0")


def _uncached_model(ctx):
    return get_backbone("timm/resnet18.a1_in1k")


def _keys_do_not_fit(ctx):
    from safetensors.torch import save_file

    path = ctx.tmp / "convnext.safetensors"
    save_file({k: v.contiguous() for k, v in get_backbone("timm/convnext_atto", None).state_dict().items()}, path)
    return get_backbone("timm/resnet10t", weights=str(path))


def _torchvision_without_network(ctx):
    offline = urllib.error.URLError("[Errno -2] Name or service not known")
    with mock.patch("torch.hub.load_state_dict_from_url", side_effect=offline):
        return get_backbone("resnet18")


class _NotExportable(torch.nn.Module):
    """Singular values of the pooled map: aten::linalg_svdvals has no ONNX export."""

    def forward(self, x):
        return torch.linalg.svdvals(x.mean(1))


def _not_exportable(ctx):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = PretrainedFeatureExtractor(model=_NotExportable(), engine="onnxruntime", num_workers=0).fit(ctx.images)
        out = est.transform(ctx.images)
    reference = PretrainedFeatureExtractor(model=_NotExportable(), engine="torch", num_workers=0)
    return caught, est, out, reference.fit(ctx.images).transform(ctx.images)


def _falls_back_once(ctx, result):
    caught, est, out, reference = result
    export = [w for w in caught if "cannot be exported to ONNX" in str(w.message)]
    assert len(export) == 1 and "_NotExportable" in str(export[0].message)
    assert est.output_description()["engine"] == "torch"
    np.testing.assert_allclose(out, reference, rtol=1e-5)


def _transformers_repository(ctx):
    """A cached repository whose config.json is a transformers one (no timm architecture)."""
    import json
    import os

    folder = os.path.join(os.environ["HF_HOME"], "hub", "models--openai--clip-vit-base-patch32")
    commit = "0" * 40
    os.makedirs(os.path.join(folder, "snapshots", commit), exist_ok=True)
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(os.path.join(folder, "snapshots", commit, "config.json"), "w") as fh:
        json.dump({"model_type": "clip", "architectures": ["CLIPModel"]}, fh)
    with open(os.path.join(folder, "refs", "main"), "w") as fh:
        fh.write(commit)
    return get_backbone("hf-hub:openai/clip-vit-base-patch32")


def _resize_differs_from_fixed_input(ctx):
    backbone = get_backbone("timm/vit_tiny_patch16_224", weights=None)
    backbone.preprocessing = Preprocessing(resize_size=256, crop_size=256)
    return PretrainedFeatureExtractor(model=backbone, engine="torch", num_workers=0).fit(ctx.images)


ROWS = [
    (
        "hub_revision_not_in_the_cache",
        _uncached_revision,
        Raises(FileNotFoundError, "the cache holds only other revisions of it (main -> "),
    ),
    (
        "hub_model_neither_cached_nor_downloadable",
        _uncached_model,
        Raises(FileNotFoundError, "hf download timm/resnet18.a1_in1k"),
    ),
    ("weights_file_keys_do_not_fit_the_timm_architecture", _keys_do_not_fit, Raises(ValueError, "missing keys: ")),
    (
        "torchvision_weights_without_network",
        _torchvision_without_network,
        Raises(FileNotFoundError, "torchvision.models.get_model('resnet18', weights='IMAGENET1K_V1')"),
    ),
    (
        "architecture_without_an_onnx_export",
        _not_exportable,
        Policy(_falls_back_once, "one warning naming the model, then PyTorch"),
    ),
    (
        "hf_hub_repository_that_timm_cannot_load",
        _transformers_repository,
        Raises(ValueError, "timm models with similar names: ['timm/vit_base_patch32_clip_224.openai'"),
    ),
    (
        "resize_differs_from_a_fixed_input_size",
        _resize_differs_from_fixed_input,
        Raises(ValueError, "takes 224x224 inputs (a fixed input size), got 256x256"),
    ),
    (
        "weights_package_spelling_suggests_the_offline_lite",
        lambda ctx: get_backbone("efficientnet-lite0"),
        Raises(ValueError, "similar: ['efficientnet_lite0'"),
    ),
    (
        "transformers_hub_id_suggests_timms_clip_tower",
        lambda ctx: get_backbone("openai/clip-vit-base-patch32"),
        Raises(ValueError, "similar: ['timm/vit_base_patch32_clip_224.openai'"),
    ),
    (
        "torch_hub_name_suggests_timms_dinov2",
        lambda ctx: get_backbone("dinov2_vits14"),
        Raises(ValueError, "'timm/vit_small_patch14_dinov2.lvd142m'"),
    ),
    ("weights_file_rewritten_since_fitting", _rewritten_file, Raises(ValueError, "not the ones it was fitted with")),
    (
        "weights_file_removed_since_fitting",
        _removed_file,
        Raises(FileNotFoundError, "saved by name, not with its tensors"),
    ),
    (
        "weights_file_rewritten_with_the_same_bytes",
        _same_file_again,
        Policy(_equal_and_small, "content, not the file's time stamps, identifies weights"),
    ),
    (
        "fitted_network_modified_before_pickling",
        _modified_network,
        Raises(ValueError, "the fitted network was modified before saving"),
    ),
    (
        "named_recipe_without_identity",
        lambda ctx: check_recipe(_named(identity=None)),
        Raises(ValueError, "without tensors must name its weights identity and digest"),
    ),
    (
        "named_recipe_with_a_number_as_digest",
        lambda ctx: check_recipe(_named(digest=3)),
        Raises(ValueError, "identity and digest with strings"),
    ),
    (
        "named_recipe_with_another_digest",
        lambda ctx: backbone_from_recipe(_named(digest="0" * 64)),
        Raises(ValueError, "does not hold the tensors it was saved with"),
    ),
    (
        "named_recipe_of_an_unknown_model",
        lambda ctx: check_recipe(_named(model="resnet17")),
        Raises(ValueError, "unknown model 'resnet17'"),
    ),
    (
        "random_weights_cannot_be_named",
        lambda ctx: backbone_recipe(get_backbone("squeezenet1_1", None), "squeezenet1_1", None, tensors=False),
        Raises(ValueError, "cannot be named, so a recipe must carry its tensors"),
    ),
    (
        "named_recipe_whose_identity_changed",
        lambda ctx: backbone_from_recipe(_named(identity="tiny_convnet|seed=1")),
        Raises(ValueError, "are not the ones it was fitted with"),
    ),
]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(4)
    return [rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for _ in range(2)]


def test_catalogue_is_large_and_ids_are_unique():
    assert_catalogue(ROWS, 8)


@pytest.mark.parametrize("row_id, fault, expected", ROWS, ids=[row[0] for row in ROWS])
def test_bad_input(row_id, fault, expected, tmp_path, images, timm_hub):
    ctx = Ctx(tmp=tmp_path, images=images)
    check_row(fault, expected, ctx)

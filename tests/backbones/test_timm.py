"""timm and Hugging Face hub models as backbones, offline, through a cache laid out as the hub writes it.

The models are random-initialised small timm networks (see ``timm_hub`` in
tests/conftest.py); every comparison is against timm's own computation:
``forward_head(forward_features(x), pre_logits=True)`` on timm's own eval
transform of the same image.
"""

import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from sktransfer import FineTuneClassifier, PretrainedFeatureExtractor
from sktransfer.backbones import get_backbone, list_backbones
from sktransfer.backbones._hub import hub_cache_dir

MODELS = ("vit_tiny_patch16_224", "convnext_atto", "resnet10t")
GROUPS = {
    "vit_tiny_patch16_224": ["embed", "blocks1", "blocks2", "blocks3", "blocks4"],
    "convnext_atto": ["stem", "stage1", "stage2", "stage3", "stage4", "pre_logits"],
    "resnet10t": ["stem", "layer1", "layer2", "layer3", "layer4"],
}


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (60 + 8 * i, 72, 3), dtype=np.uint8)) for i in range(3)]


def _timm_reference(name, repo_id, images):
    """timm's own embedding of ``images``: the cached weights, timm's eval transform, forward_head(pre_logits)."""
    from huggingface_hub import try_to_load_from_cache
    from safetensors.torch import load_file

    net = timm.create_model(name, pretrained=False)
    net.load_state_dict(load_file(try_to_load_from_cache(repo_id, "model.safetensors", cache_dir=hub_cache_dir())))
    net.eval()
    transform = create_transform(**resolve_data_config(model=net))
    x = torch.stack([transform(img) for img in images])
    with torch.no_grad():
        return net.forward_head(net.forward_features(x), pre_logits=True).numpy(), net, x


def _cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


ENGINES = ["torch", "onnxruntime", pytest.param("openvino", marks=pytest.mark.openvino)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", MODELS)
def test_features_equal_timms_own_on_every_engine(timm_hub, photos, name, engine):
    expected, _, _ = _timm_reference(name, timm_hub[name], photos)
    est = PretrainedFeatureExtractor(model=f"timm/{name}", engine=engine, num_workers=0).fit(photos)
    got = est.transform(photos)
    assert est.output_description()["engine"] == engine
    assert got.shape == expected.shape
    assert _cosine(got, expected).min() >= 0.999


@pytest.mark.parametrize("name", MODELS)
def test_layer_groups_run_as_timms_forward_features(timm_hub, name):
    backbone = get_backbone(f"timm/{name}")
    assert backbone.layer_groups == GROUPS[name]
    assert backbone.name == f"timm/{name}"
    _, net, x = _timm_reference(name, timm_hub[name], [Image.new("RGB", (64, 64), (90, 20, 200))])
    x = backbone.preprocessing.normalize(torch.full((1, 3, *x.shape[-2:]), 120, dtype=torch.uint8))
    with torch.no_grad():
        torch.testing.assert_close(backbone.forward_trunk(x), net.forward_features(x))
    # Each tensor is in the backbone's state dict once.
    assert len(backbone.state_dict()) == len(net.state_dict())


def test_vit_token_and_average_pooling_and_a_middle_group(timm_hub, photos):
    _, net, x = _timm_reference("vit_tiny_patch16_224", timm_hub["vit_tiny_patch16_224"], photos)
    with torch.no_grad():
        tokens = net.forward_features(x)
        middle = net.blocks[:6](net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed(x)))))
    expected = {
        ("token", None): tokens[:, 0],
        ("avg", None): tokens[:, 1:].mean(1),
        ("token", "blocks2"): middle[:, 0],
    }
    for (pooling, layer), want in expected.items():
        engine = "onnxruntime" if layer else "torch"  # the ViT graph's export is checked once here
        est = PretrainedFeatureExtractor(
            model="timm/vit_tiny_patch16_224", pooling=pooling, layer=layer, engine=engine, num_workers=0
        )
        got = est.fit(photos).transform(photos)
        assert _cosine(got, want.numpy()).min() >= 0.999, (pooling, layer)


def test_weights_files_safetensors_and_pth_give_the_hub_embeddings(timm_hub, photos, tmp_path):
    from safetensors.torch import save_file

    expected, net, _ = _timm_reference("resnet10t", timm_hub["resnet10t"], photos)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, tmp_path / "r.safetensors")
    torch.save(state, tmp_path / "r.pth")
    for file in ("r.safetensors", "r.pth"):
        est = PretrainedFeatureExtractor(model="timm/resnet10t", weights=str(tmp_path / file), engine="torch")
        got = est.fit(photos).transform(photos)
        assert _cosine(got, expected).min() >= 0.999
        assert est.output_description()["weights"].startswith("timm/resnet10t|sha256=")


def test_output_description_names_the_hub_repository_commit_and_file_hash(timm_hub, photos):
    est = PretrainedFeatureExtractor(model="timm/convnext_atto", engine="torch").fit(photos[:1])
    weights = est.output_description()["weights"]
    repo = timm_hub["convnext_atto"]
    refs = os.path.join(hub_cache_dir(), "models--" + repo.replace("/", "--"), "refs", "main")
    with open(refs) as fh:
        commit = fh.read().strip()
    assert weights.startswith(f"timm/convnext_atto|hf-hub:{repo}@{commit}/model.safetensors|sha256=")
    # The same model as an hf-hub: id has the same weights identity after its own name.
    other = PretrainedFeatureExtractor(model=f"hf-hub:{repo}", engine="torch").fit(photos[:1])
    assert other.output_description()["weights"].split("|", 1)[1] == weights.split("|", 1)[1]
    np.testing.assert_allclose(other.transform(photos[:1]), est.transform(photos[:1]), rtol=1e-5, atol=1e-5)


def test_pickle_is_small_and_rebuilds_from_the_cache_in_a_fresh_process(timm_hub, photos, tmp_path):
    est = PretrainedFeatureExtractor(model="timm/vit_tiny_patch16_224", engine="torch", num_workers=0)
    expected = est.fit(photos).transform(photos)
    blob = pickle.dumps(est)
    assert len(blob) < 100_000
    (tmp_path / "est.pkl").write_bytes(blob)
    np.save(tmp_path / "images.npy", np.stack([np.asarray(p.resize((64, 64))) for p in photos]))
    expected_small = est.transform(list(np.load(tmp_path / "images.npy")))
    script = (
        "import pickle, sys, numpy as np\n"
        "est = pickle.load(open(sys.argv[1], 'rb'))\n"
        "np.save(sys.argv[3], est.transform(list(np.load(sys.argv[2]))))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "est.pkl"), str(tmp_path / "images.npy"), str(tmp_path / "out")],
        check=True,
        env=env,
        timeout=300,
    )
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected_small)
    assert expected.shape == (3, 192)


def _one_group_finetuner(model, **params):
    """One epoch training the last group, on any timm model."""
    return FineTuneClassifier(
        model=model,
        unfreeze=1,
        max_epochs=1,
        batch_size=4,
        num_workers=0,
        random_state=0,
        patience=None,
        check_folds=None,  # fine-tune whatever the internal check would say: the groups trained are the subject
        **params,
    )


def _groups_changed(before, clf):
    """The layer groups of ``clf``'s backbone whose tensors differ from ``before``."""
    after = clf.module_.backbone.state_dict()
    return {k.split(".")[1] for k, v in after.items() if k.startswith("groups.") and not torch.equal(v, before[k])}


def test_finetune_unfreeze_1_trains_only_the_last_group(timm_hub):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    clf = _one_group_finetuner("timm/resnet10t")
    before = {k: v.clone() for k, v in get_backbone("timm/resnet10t").state_dict().items()}
    clf.fit(X, y)
    assert clf.predict(X).shape == (8,)
    assert _groups_changed(before, clf) == {"layer4"}


def test_finetune_unfreeze_1_trains_only_the_last_feature_info_stage(tmp_path):
    torch.manual_seed(0)
    net = timm.create_model("regnetx_002", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "regnet.pth")
    X = np.random.default_rng(1).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    clf = _one_group_finetuner("timm/regnetx_002", weights=str(tmp_path / "regnet.pth"))
    clf.fit(X, np.array([0, 1] * 4))
    before = get_backbone("timm/regnetx_002", weights=str(tmp_path / "regnet.pth")).state_dict()
    assert _groups_changed(before, clf) == {"s4"}


def test_list_backbones_filters_timms_pretrained_names():
    names = list_backbones("*dinov2*")
    assert "timm/vit_small_patch14_dinov2.lvd142m" in names
    assert all("dinov2" in n for n in names)
    assert "timm/convnext_atto.d2_in1k" in list_backbones("timm/convnext_atto*")
    assert "resnet18" in list_backbones("resnet1*") and "resnet18" in list_backbones()


def test_large_fixed_input_defaults_to_224_and_can_be_set():
    dino = "timm/vit_small_patch14_dinov2.lvd142m"
    small = get_backbone(dino, weights=None)
    assert (small.preprocessing.crop_size, small.preprocessing.resize_size) == (224, 224)
    full = get_backbone(dino, weights=None, input_size=518)
    assert full.preprocessing.crop_size == 518
    assert full.groups["embed"].patch_embed.img_size == (518, 518)


def test_config_json_written_by_timm_is_what_hf_hub_ids_read(timm_hub):
    repo = timm_hub["vit_tiny_patch16_224"]
    folder = os.path.join(hub_cache_dir(), "models--" + repo.replace("/", "--"))
    commit = open(os.path.join(folder, "refs", "main")).read().strip()
    config = json.load(open(os.path.join(folder, "snapshots", commit, "config.json")))
    backbone = get_backbone(f"hf-hub:{repo}")
    assert config["architecture"] == "vit_tiny_patch16_224"
    assert backbone.layer_groups == GROUPS["vit_tiny_patch16_224"]


def test_rank_transfer_across_timm_candidates(timm_hub):
    from sktransfer.selection import rank_transfer

    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    y = np.array([0, 1, 2] * 4)
    candidates = {
        name: PretrainedFeatureExtractor(model=f"timm/{name}", engine="torch", num_workers=0)
        for name in ("convnext_atto", "resnet10t")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = rank_transfer(candidates, X, y, cv=2, random_state=0)
    assert set(table.index) == set(candidates)


def test_register_tokens_and_no_class_token_are_pooled_as_such():
    from sktransfer.feature_extraction._pooling import global_pool

    backbone = get_backbone("timm/vit_small_patch14_reg4_dinov2.lvd142m", weights=None)
    assert set(backbone.group_formats.values()) == {"nlc+4"}
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens = backbone.forward_trunk(x)
    assert tokens.shape[1] == 1 + 4 + 16 * 16
    torch.testing.assert_close(global_pool(tokens, "avg", "nlc+4"), tokens[:, 5:].mean(1))
    torch.testing.assert_close(global_pool(tokens, "token", "nlc+4"), tokens[:, 0])
    # A sequence without a class token (SigLIP): all tokens are patches, and there is no token to read.
    torch.testing.assert_close(global_pool(tokens, "avg", "nl"), tokens.mean(1))
    with pytest.raises(ValueError, match="has none"):
        global_pool(tokens, "token", "nl")


@pytest.mark.parametrize(
    "engine, precision, bound",
    [
        # int8 of random weights, calibrated on 8 images: a looser agreement, as documented for int8.
        ("onnxruntime", "int8", 0.9),
        pytest.param("openvino", "int8", 0.9, marks=pytest.mark.openvino),
        # bfloat16 where the CPU has it (else it runs float32, with a warning).
        ("torch", "bfloat16", 0.99),
    ],
)
def test_vit_graph_runs_in_reduced_precision(timm_hub, engine, precision, bound):
    rng = np.random.default_rng(3)
    X = list(rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8))
    ref = PretrainedFeatureExtractor(model="timm/vit_tiny_patch16_224", engine="torch", num_workers=0).fit(X)
    est = PretrainedFeatureExtractor(
        model="timm/vit_tiny_patch16_224", engine=engine, precision=precision, num_workers=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few calibration images; float32 where the CPU has no bfloat16
        got = est.fit(X).transform(X)
    assert est.output_description()["engine"] == engine
    assert _cosine(got, ref.transform(X)).min() >= bound


def test_embedding_store_serves_a_timm_models_embeddings(timm_hub, photos, tmp_path):
    def extractor():
        return PretrainedFeatureExtractor(model="timm/resnet10t", engine="torch", num_workers=0, cache=tmp_path)

    first = extractor().fit(photos).transform(photos)
    second = extractor().fit(photos)

    def no_network_run(batch):
        raise AssertionError("the stored embeddings should have been served")

    second._runner = no_network_run
    np.testing.assert_array_equal(second.transform(photos), first)


#: Architectures without a splitter of their own, cut at their feature_info modules.
FEATURE_INFO_GROUPS = {
    "efficientnet_b0": ["blocks0", "blocks1", "blocks2", "blocks4", "blocks6"],
    "regnetx_002": ["stem", "s1", "s2", "s3", "s4"],
    "mobilenetv3_small_050": ["bn1", "blocks0", "blocks1", "blocks3", "blocks5", "pre_logits"],
}


@pytest.mark.parametrize("name", FEATURE_INFO_GROUPS)
def test_other_architectures_are_cut_at_their_feature_info(name):
    torch.manual_seed(0)
    backbone = get_backbone(f"timm/{name}", weights=None)
    assert backbone.layer_groups == FEATURE_INFO_GROUPS[name]
    net = backbone.pre_logits.net
    x = torch.randn(2, 3, 80, 96)  # not the probe's size or shape
    with torch.no_grad():
        torch.testing.assert_close(backbone.forward_trunk(x), net.forward_features(x))
        torch.testing.assert_close(
            backbone.forward_embedding(x), net.forward_head(net.forward_features(x), pre_logits=True)
        )
    # Each parameter of the model is in exactly one group or in the head (pre-logits and classifier).
    owners = [backbone.groups[g] for g in backbone.group_names] + [backbone.pre_logits, backbone.head]
    counts = {}
    for owner in owners:
        for p in {id(p): p for p in owner.parameters()}.values():
            counts[id(p)] = counts.get(id(p), 0) + 1
    assert sorted(counts) == sorted(id(p) for p in net.parameters())
    assert set(counts.values()) == {1}
    assert len(backbone.state_dict()) == len(net.state_dict())


def test_a_model_whose_children_are_not_its_trunk_stays_one_group():
    # EVA-02: position embedding and rotary embedding between its children.
    torch.manual_seed(0)
    backbone = get_backbone("timm/eva02_tiny_patch14_224", weights=None)
    assert backbone.layer_groups == ["features"]
    x = torch.randn(1, 3, 224, 224)
    net = backbone.pre_logits.net
    with torch.no_grad():
        torch.testing.assert_close(backbone.forward_trunk(x), net.forward_features(x))


def test_copies_of_a_timm_backbone_are_independent():
    import copy

    torch.manual_seed(0)
    backbone = get_backbone("timm/mobilenetv3_small_050", weights=None)
    net = backbone.pre_logits.net
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net.forward_head(net.forward_features(x), pre_logits=True)
        torch.testing.assert_close(backbone.forward_embedding(x), expected)
        copied = copy.deepcopy(backbone)
        next(copied.parameters()).add_(1.0)  # the copy's network reads the copy's tensors only
        torch.testing.assert_close(backbone.forward_embedding(x), expected)
        assert not torch.allclose(copied.forward_embedding(x), expected)
        # Casting replaces buffers (BatchNorm statistics): the network reads the new ones.
        doubled = copy.deepcopy(backbone).double()
        torch.testing.assert_close(doubled.forward_embedding(x.double()).float(), expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def wide_photos():
    """Non-square images with structure (a gradient and a bright block), so the crop modes see different pixels."""
    rng = np.random.default_rng(1)
    out = []
    for height, width in ((40, 120), (130, 50), (70, 96)):
        ramp = np.linspace(0, 255, width)[None, :, None] * np.array([1.0, 0.4, 0.1])
        pixels = np.broadcast_to(ramp, (height, width, 3)).copy()
        pixels[: height // 3, : width // 4] = (250, 250, 30)
        pixels += rng.normal(0, 12, pixels.shape)
        out.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    return out


def _timm_reference_from_config(name, repo_id, images):
    """timm's own embedding with the eval transform of ``hf-hub:<repo_id>``'s pretrained configuration."""
    from timm.models import load_model_config_from_hf

    pretrained_cfg = load_model_config_from_hf(repo_id)[0]
    _, net, _ = _timm_reference(name, repo_id, images[:1])
    data = resolve_data_config(pretrained_cfg=pretrained_cfg)
    transform = create_transform(**data)
    x = torch.stack([transform(img) for img in images])
    with torch.no_grad():
        return net.forward_head(net.forward_features(x), pre_logits=True).numpy(), data["crop_mode"]


@pytest.mark.parametrize("crop_mode", ["squash", "border", "center"])
def test_crop_modes_embed_as_timms_own_eval_transform(timm_hub_variant, wide_photos, crop_mode):
    # crop_pct=1: squash keeps the whole image, border pads it with the mean pixel.
    repo = timm_hub_variant("resnet10t", f"tests/resnet10t-{crop_mode}", crop_mode=crop_mode, crop_pct=1.0)
    expected, timm_crop_mode = _timm_reference_from_config("resnet10t", repo, wide_photos)
    assert timm_crop_mode == crop_mode
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "embeddings differ from timm's" warning any more
        est = PretrainedFeatureExtractor(model=f"hf-hub:{repo}", engine="torch", num_workers=0).fit(wide_photos)
    got = est.transform(wide_photos)
    assert est.backbone_.preprocessing.crop_mode == crop_mode
    assert est.output_description()["preprocessing"]["crop_mode"] == crop_mode
    assert _cosine(got, expected).min() >= 0.999
    if crop_mode != "center":
        # The mode matters on these images: the centre crop's embedding is another one.
        center = PretrainedFeatureExtractor(model="timm/resnet10t", engine="torch", num_workers=0).fit(wide_photos)
        assert _cosine(center.transform(wide_photos), expected).min() < 0.999


def test_registry_crop_modes_reach_the_preprocessing():
    from sktransfer.backbones._timm import timm_preprocessing
    from sktransfer.backbones._timm_names import timm_source

    for name, mode in (("coat_lite_medium_384.in1k", "squash"), ("deepseek_vit_412m.deepseek_v4_1_flash", "border")):
        pre = timm_preprocessing(timm_source(f"timm/{name}"), 224)
        assert (pre.crop_mode, pre.resize_size, pre.crop_size) == (mode, 224, 224), name

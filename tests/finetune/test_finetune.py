"""FineTuneClassifier: freezing, learning rates, phases, caching, sklearn API.

Fast tests use a tiny random-init backbone of three conv groups on 16 random
32x32 images; the real-data ones are marked ``real_data``/``real_weights``.
"""

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit
from tiny_finetune import GROUPS, make_clf, make_tiny_backbone

from sktransfer import FineTuneClassifier, ImageLoadError
from sktransfer.backbones import get_backbone
from sktransfer.finetune._network import FineTuneNetwork, param_groups, set_trainable
from sktransfer.utils._device import resolve_device

# --------------------------------------------------------------- freezing


@pytest.mark.parametrize("unfreeze", [0, 1, 2, 3, "all"])
def test_requires_grad_follows_unfreeze(tiny_backbone, unfreeze):
    net = FineTuneNetwork(copy.deepcopy(tiny_backbone), n_classes=2)
    n = 3 if unfreeze == "all" else unfreeze
    set_trainable(net, n)
    trainable = GROUPS[len(GROUPS) - n :]
    for group in GROUPS:
        flags = {p.requires_grad for p in net.backbone.layer_group(group).parameters()}
        assert flags == {group in trainable}, group
    assert all(p.requires_grad for p in net.head.parameters())
    assert net.frozen_groups == [g for g in GROUPS if g not in trainable]


@pytest.mark.parametrize("lr_decay", [0.1, 0.3, 1.0])
def test_param_groups_have_decayed_lrs(tiny_backbone, lr_decay):
    net = FineTuneNetwork(copy.deepcopy(tiny_backbone), n_classes=2)
    groups = param_groups(net, 0.01, lr_decay)
    assert [g["name"] for g in groups] == ["head", "stage2", "stage1", "stem"]
    for k, g in enumerate(groups):
        assert g["lr"] == pytest.approx(0.01 * lr_decay**k)
    # Every parameter is in exactly one group.
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())


@pytest.mark.parametrize("unfreeze,lr_decay", [(0, 0.3), (1, 0.1), (2, 0.3), ("all", 1.0)])
def test_fitted_optimizer_and_freezing(tiny_backbone, data, unfreeze, lr_decay):
    X, y = data
    clf = make_clf(tiny_backbone, unfreeze=unfreeze, lr_decay=lr_decay, lr=0.02, max_epochs=2).fit(X, y)
    lrs = {g["name"]: g["lr"] for g in clf.optimizer_.param_groups}
    assert lrs == pytest.approx(
        {"head": 0.02, "stage2": 0.02 * lr_decay, "stage1": 0.02 * lr_decay**2, "stem": 0.02 * lr_decay**3}
    )
    n = 3 if unfreeze == "all" else unfreeze
    for group in GROUPS:
        flags = {p.requires_grad for p in clf.module_.backbone.layer_group(group).parameters()}
        assert flags == {group in GROUPS[3 - n :]}
    # All parameters were in the optimizer from the start.
    assert sum(len(g["params"]) for g in clf.optimizer_.param_groups) == len(list(clf.module_.parameters()))


def test_set_params_lr_keeps_decay(fitted):
    clf = copy.deepcopy(fitted)
    clf.set_params(lr=0.1, lr_decay=0.5)
    lrs = [g["lr"] for g in clf.optimizer_.param_groups]
    assert lrs == pytest.approx([0.1, 0.05, 0.025, 0.0125])


# ------------------------------------------------------------------ phases


class _RecordTrainable(Callback):
    """Callback recording which groups train at each epoch."""

    def __init__(self):
        self.epochs = []

    def on_epoch_begin(self, net, **kwargs):
        self.epochs.append(
            [g for g in GROUPS if any(p.requires_grad for p in net.module_.backbone.layer_group(g).parameters())]
        )


def test_phase_switch_at_head_epochs(tiny_backbone, data):
    X, y = data
    recorder = _RecordTrainable()
    clf = make_clf(tiny_backbone, unfreeze=2, head_epochs=2, max_epochs=4, callbacks=[("rec", recorder)])
    clf.fit(X, y)
    assert clf.history[:, "phase"] == [1, 1, 2, 2]
    assert recorder.epochs == [[], [], ["stage1", "stage2"], ["stage1", "stage2"]]


def test_warm_start_continues_in_phase_two(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, head_epochs=2, max_epochs=2, warm_start=True).fit(X, y)
    assert clf.history[:, "phase"] == [1, 1]
    clf.fit(X, y)
    assert clf.history[:, "phase"] == [1, 1, 2, 2]
    assert clf.predict(X).shape == (16,)


def test_resume_from_saved_params(tiny_backbone, data, tmp_path):
    X, y = data
    files = {f"f_{kind}": tmp_path / f"{kind}.pt" for kind in ("params", "optimizer")}
    files["f_history"] = tmp_path / "history.json"
    first = make_clf(tiny_backbone, head_epochs=2, max_epochs=2).fit(X, y)
    first.save_params(**files)
    resumed = make_clf(tiny_backbone, head_epochs=2, max_epochs=2, classes=["ant", "bee"], warm_start=True)
    resumed.initialize()
    resumed.load_params(**files)
    resumed.fit(X, y)
    assert resumed.history[:, "phase"] == [1, 1, 2, 2]
    assert [g["name"] for g in resumed.optimizer_.param_groups] == ["head", "stage2", "stage1", "stem"]
    assert list(resumed.predict(X[:2])) == list(resumed.classes_[resumed.predict_proba(X[:2]).argmax(1)])


class _RecordLRs(Callback):
    def __init__(self):
        self.lrs = []

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.lrs.append({g["name"]: g["lr"] for g in net.optimizer_.param_groups})


@pytest.mark.parametrize("head_epochs", [0, 1])
def test_cosine_schedule_decays_every_group_keeping_ratios(tiny_backbone, data, head_epochs):
    X, y = data
    rec = _RecordLRs()
    clf = make_clf(
        tiny_backbone, unfreeze=2, lr=0.1, lr_decay=0.5, head_epochs=head_epochs, max_epochs=3, callbacks=[("rec", rec)]
    ).fit(X, y)
    per_epoch = 16 // 4
    head = np.array([lrs["head"] for lrs in rec.lrs])
    phase1, phase2 = head[: head_epochs * per_epoch], head[head_epochs * per_epoch :]
    np.testing.assert_allclose(phase1, 0.1)  # the head phase runs at the full rate
    steps = np.arange(len(phase2)) / len(phase2)
    np.testing.assert_allclose(phase2, 0.1 * 0.5 * (1 + np.cos(np.pi * steps)))
    for lrs in rec.lrs:  # the groups keep their ratios to the head
        assert lrs["stage2"] == pytest.approx(lrs["head"] * 0.5)
        assert lrs["stage1"] == pytest.approx(lrs["head"] * 0.25)
    # Afterwards the optimizer is back at the configured rates.
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1)


def test_constant_schedule(tiny_backbone, data):
    X, y = data
    rec = _RecordLRs()
    make_clf(tiny_backbone, lr=0.1, lr_schedule="constant", callbacks=[("rec", rec)]).fit(X, y)
    assert {lrs["head"] for lrs in rec.lrs} == {0.1}


def test_refit_trains_on_all_data_for_the_best_epochs(tiny_backbone, data):
    X, y = data
    split = ValidSplit(4, stratified=True)
    clf = make_clf(tiny_backbone, max_epochs=4, train_split=split, patience=2).fit(X, y)
    validated = clf.validation_history_
    assert "valid_loss" in validated[-1]
    best = int(np.argmin(validated[:, "valid_loss"])) + 1
    assert clf.best_epoch_ == best
    assert len(clf.history) == best
    # The refit saw every image: 16 per epoch, 12 in the validated run.
    assert sum(b.get("train_batch_size", 0) for b in clf.history[-1, "batches"]) == 16
    assert sum(b.get("train_batch_size", 0) for b in validated[-1, "batches"]) == 12
    # Early stopping is back for the next (warm-started) fit.
    assert "early_stopping" in dict(clf.callbacks_)

    kept = make_clf(tiny_backbone, max_epochs=4, train_split=split, patience=2, refit=False).fit(X, y)
    assert kept.best_epoch_ is None and kept.validation_history_ is None
    assert "valid_loss" in kept.history[-1]
    # Without refit, the validated run is the model: same run, same weights.
    np.testing.assert_allclose(kept.history[:, "valid_loss"], validated[:, "valid_loss"], rtol=1e-5)


class _RecordHeadDtype(Callback):
    """Dtype of the head's output during training batches."""

    def __init__(self):
        self.dtypes = set()

    def on_train_begin(self, net, **kwargs):
        self.handle = net.module_.head[-1].register_forward_hook(
            lambda module, args, out: self.dtypes.add(out.dtype) if module.training else None
        )

    def on_train_end(self, net, **kwargs):
        self.handle.remove()


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_trains_in_reduced_precision(tiny_backbone, data, precision, tmp_path):
    X, y = data
    rec = _RecordHeadDtype()
    clf = make_clf(tiny_backbone, precision=precision, unfreeze="all", lr=1e-2, callbacks=[("rec", rec)]).fit(X, y)
    assert rec.dtypes == {getattr(torch, precision)}  # the forward pass ran under autocast
    assert all(p.dtype == torch.float32 for p in clf.module_.parameters())  # weights stay float32
    assert np.isfinite(clf.history[:, "train_loss"]).all()
    # The weights moved (a float16 overflow would have skipped every step).
    assert not torch.equal(
        clf.module_.backbone.layer_group("stem")[0].weight, tiny_backbone.layer_group("stem")[0].weight
    )
    assert (clf.grad_scaler_ is not None) == (precision == "float16")
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(X), proba, atol=1e-6)


def test_frozen_batchnorm_statistics_do_not_move(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, unfreeze=1, head_epochs=1, max_epochs=3, cache_activations=False).fit(X, y)
    before, after = tiny_backbone, clf.module_.backbone
    for group in ["stem", "stage1"]:  # frozen throughout
        bn0, bn1 = before.layer_group(group)[1], after.layer_group(group)[1]
        torch.testing.assert_close(bn0.running_mean, bn1.running_mean, rtol=0, atol=0)
        torch.testing.assert_close(bn0.running_var, bn1.running_var, rtol=0, atol=0)
        torch.testing.assert_close(bn0.weight, bn1.weight, rtol=0, atol=0)
    # The unfrozen group trains, statistics included.
    assert not torch.equal(before.layer_group("stage2")[1].running_mean, after.layer_group("stage2")[1].running_mean)


def test_batchnorm_train_moves_statistics(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, unfreeze=0, max_epochs=1, batchnorm="train").fit(X, y)
    assert not torch.equal(
        tiny_backbone.layer_group("stem")[1].running_mean, clf.module_.backbone.layer_group("stem")[1].running_mean
    )
    # Frozen weights still do not move.
    torch.testing.assert_close(
        tiny_backbone.layer_group("stem")[0].weight, clf.module_.backbone.layer_group("stem")[0].weight, rtol=0, atol=0
    )


# ----------------------------------------------------------------- caching


class _RecordInputStart(Callback):
    def __init__(self):
        self.starts = []

    def on_epoch_end(self, net, **kwargs):
        self.starts.append(net.module_.input_start)


@pytest.mark.parametrize("unfreeze", [0, 1, 2])
def test_cached_equals_uncached(tiny_backbone, data, unfreeze):
    X, y = data
    # Both in PyTorch: the graph engines (OpenVINO, ONNX Runtime) agree with it only to rounding
    # (see test_fast_prefix.py).
    params = {
        "unfreeze": unfreeze,
        "head_epochs": 2,
        "max_epochs": 4,
        "patience": None,
        "engine": "torch",
        "train_split": ValidSplit(4, stratified=True),
    }
    cached_rec, uncached_rec = _RecordInputStart(), _RecordInputStart()
    cached = make_clf(tiny_backbone, cache_activations=True, callbacks=[("rec", cached_rec)], **params).fit(X, y)
    uncached = make_clf(tiny_backbone, cache_activations=False, callbacks=[("rec", uncached_rec)], **params)
    uncached.fit(X, y)
    second = {0: "head", 1: "stage2", 2: "stage1"}[unfreeze]
    # The validated run, then the refit on all images (patience=None: all 4 epochs).
    assert cached_rec.starts == ["head", "head", second, second] * 2  # the cache was really used
    assert uncached_rec.starts == [None] * 8
    assert cached.best_epoch_ == uncached.best_epoch_ == 4
    assert cached.module_.input_start is None  # back to image input after fit
    for (name, p1), (_, p2) in zip(cached.module_.state_dict().items(), uncached.module_.state_dict().items()):
        torch.testing.assert_close(p1, p2, rtol=1e-4, atol=1e-5, msg=name)
    np.testing.assert_allclose(
        cached.validation_history_[:, "valid_loss"], uncached.validation_history_[:, "valid_loss"], rtol=1e-4
    )
    np.testing.assert_allclose(cached.history[:, "train_loss"], uncached.history[:, "train_loss"], rtol=1e-4)
    np.testing.assert_allclose(cached.predict_proba(X), uncached.predict_proba(X), atol=1e-5)


def test_probe_head_is_the_logistic_regression_of_the_embeddings(tiny_backbone, data):
    from sklearn.linear_model import LogisticRegression

    from sktransfer import PretrainedFeatureExtractor

    X, y = data
    # One head epoch at a negligible learning rate: the head stays where the
    # probe put it.
    clf = make_clf(tiny_backbone, head_init="probe", max_epochs=1, head_epochs=1, lr=1e-12).fit(X, y)
    emb = PretrainedFeatureExtractor(model=tiny_backbone, weights=None, engine="torch", num_workers=0)
    emb = emb.fit(X).transform(X)
    # The probe is a softmax over both classes penalised by ||W||^2 / (2C):
    # for two classes that is scikit-learn's binary model with C doubled.
    reference = LogisticRegression(C=2.0, tol=1e-10, max_iter=10_000).fit(emb, y)
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(emb), atol=2e-3)
    random_head = make_clf(tiny_backbone, head_init="random", max_epochs=1, head_epochs=1, lr=1e-12).fit(X, y)
    probe_w = clf.module_.head[-1].weight.detach()
    assert (random_head.module_.head[-1].weight.detach() - probe_w).abs().max() > 0.1


def test_grid_clones_share_decoded_images_and_activations(data, tmp_path, monkeypatch):
    from PIL import Image
    from sklearn.base import clone

    from sktransfer.finetune._fit_memo import FIT_MEMO

    X, y = data
    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    FIT_MEMO.clear()
    params = {"model": "tiny_convnet", "weights": None, "unfreeze": 1, "head_epochs": 1, "max_epochs": 2}
    first = make_clf(None, **params).fit(paths, y)
    assert FIT_MEMO.hits == 0
    second = clone(first).set_params(unfreeze=2).fit(paths, y)
    # The decoded images and the frozen prefix activations came from the first fit.
    assert FIT_MEMO.hits >= 2
    monkeypatch.setattr(FIT_MEMO, "max_bytes", 0)  # nothing shared from here on
    FIT_MEMO.clear()
    alone = clone(second).fit(paths, y)
    assert FIT_MEMO.hits == 0
    np.testing.assert_allclose(second.predict_proba(paths), alone.predict_proba(paths), atol=1e-6)
    # A fit continuing from trained weights must not take pretrained activations.
    from sktransfer.finetune._activation_cache import shared_key

    assert shared_key(second.module_, lambda: ("tiny_convnet", None), paths) is None
    assert (
        shared_key(
            clone(second).set_params(classes=["ant", "bee"]).initialize().module_, lambda: ("tiny_convnet", None), paths
        )
        is not None
    )


def test_augment_light_and_callable(tiny_backbone, data):
    X, y = data
    make_clf(tiny_backbone, augment="light", max_epochs=2).fit(X, y)
    calls = []

    def flip(img):
        calls.append(img.size)
        return img.transpose(0)  # PIL horizontal flip, centre-cropped afterwards

    clf = make_clf(tiny_backbone, augment=flip, max_epochs=1).fit(X, y)
    assert calls and calls[0] == (32, 32)  # resized to resize_size on the shorter side
    assert clf.predict(X).shape == (16,)


# ------------------------------------------------------------ sklearn API


def test_labels_and_probabilities(fitted, data):
    X, y = data
    assert list(fitted.classes_) == ["ant", "bee"]
    proba = fitted.predict_proba(X)
    assert proba.shape == (16, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    predicted = fitted.predict(X)
    np.testing.assert_array_equal(predicted, fitted.classes_[proba.argmax(axis=1)])
    # score is the accuracy of those predictions, and the signal was learnt.
    assert fitted.score(X, y) == pytest.approx(np.mean(predicted == y))
    assert fitted.score(X, y) > 0.5


def test_pandas_and_list_inputs(fitted, data):
    pd = pytest.importorskip("pandas")
    X, _ = data
    expected = fitted.predict_proba(X)
    np.testing.assert_allclose(fitted.predict_proba(list(X)), expected, atol=1e-6)
    np.testing.assert_allclose(fitted.predict_proba(pd.Series(list(X))), expected, atol=1e-6)


def test_clone_and_get_set_params(tiny_backbone):
    clf = make_clf(tiny_backbone, unfreeze=1, lr_decay=0.1)
    cloned = clone(clf)
    assert cloned.get_params()["unfreeze"] == 1 and cloned.get_params()["lr_decay"] == 0.1
    assert not hasattr(cloned, "module_")  # nothing built before fit
    cloned.set_params(unfreeze="all", lr=0.5)
    assert cloned.unfreeze == "all" and cloned.lr == 0.5


def test_pickle_and_joblib_round_trip(fitted, data, tmp_path):
    X, _ = data
    expected = fitted.predict_proba(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X), expected, atol=1e-6)
    joblib.dump(fitted, tmp_path / "clf.joblib")
    restored = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_allclose(restored.predict_proba(X), expected, atol=1e-6)


def test_auto_device_pickle_loads_on_cpu(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, device="auto", max_epochs=1).fit(X, y)
    assert clf.get_params()["device"] == "auto"
    # The device is saved as the parameter, "auto", which resolves again where it loads.
    state = clf.__getstate__()
    assert "device" not in state["params"] and "device_" not in state["fitted"]
    # An earlier sktransfer saved skorch's state, with the device a fit on a GPU resolved to.
    old_format = NeuralNetClassifier.__getstate__(clf)
    old_format["device"] = "cuda"
    for saved in (state, old_format):
        restored = FineTuneClassifier.__new__(FineTuneClassifier)
        restored.__setstate__(saved)
        assert restored.get_params()["device"] == "auto" and restored.device_ == resolve_device("auto")
        assert restored.predict(X).shape == (16,)


def test_grid_search(tiny_backbone, data):
    X, y = data
    search = GridSearchCV(make_clf(tiny_backbone, max_epochs=2), {"unfreeze": [0, 1, 2], "lr_decay": [0.1, 0.3]}, cv=2)
    search.fit(X, y)
    assert set(search.best_params_) == {"unfreeze", "lr_decay"}
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 6 and np.isfinite(scores).all()
    assert search.best_score_ == pytest.approx(scores.max())


# ------------------------------------------------------------- bad input


def test_one_class_is_an_error(tiny_backbone, data):
    X, _ = data
    with pytest.raises(ValueError, match="at least 2 classes.*1 class"):
        make_clf(tiny_backbone).fit(X, ["ant"] * 16)


def test_unseen_labels_at_score(fitted, data):
    X, y = data
    with pytest.raises(ValueError, match="never seen in fit.*wasp"):
        fitted.score(X, np.where(np.arange(16) == 3, "wasp", y))


def test_unreadable_image_names_the_file(tiny_backbone, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    good = [np.zeros((32, 32, 3), np.uint8)] * 3
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        make_clf(tiny_backbone).fit(good + [str(bad)], ["a", "b", "a", "b"])


def test_unfreeze_too_large(tiny_backbone, data):
    X, y = data
    with pytest.raises(ValueError, match=r"unfreeze=4 but tiny has only 3 layer groups"):
        make_clf(tiny_backbone, unfreeze=4).fit(X, y)


@pytest.mark.parametrize("lr_decay", [0.0, 1.5, -0.3])
def test_lr_decay_out_of_range(tiny_backbone, data, lr_decay):
    X, y = data
    with pytest.raises(ValueError, match="lr_decay"):
        make_clf(tiny_backbone, lr_decay=lr_decay).fit(X, y)


def test_caller_backbone_not_trained_in_place(tiny_backbone, data):
    X, y = data
    reference = make_tiny_backbone()
    make_clf(tiny_backbone, unfreeze="all", max_epochs=2).fit(X, y)
    for p0, p1 in zip(reference.parameters(), tiny_backbone.parameters()):
        assert torch.equal(p0, p1)


# --------------------------------------------------------------- real data


@pytest.mark.real_data
@pytest.mark.real_weights
def test_hymenoptera_quick(data_dir):
    from sktransfer.datasets import load_image_folder

    X_train, y_train = load_image_folder(data_dir / "hymenoptera" / "train")
    X_val, y_val = load_image_folder(data_dir / "hymenoptera" / "val")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(X_val), 60, replace=False)
    clf = FineTuneClassifier(random_state=0, max_epochs=6, head_epochs=3, verbose=0).fit(X_train, y_train)
    assert clf.score([X_val[i] for i in idx], y_val[idx]) >= 0.85


# ------------------------------------------------------------- timm's Lites


def test_efficientnet_lite_through_timm_fine_tunes_its_last_group(data, tmp_path):
    # The offline Lites are timm networks: unfreeze=1 trains timm's conv_head
    # (group head_conv) and the new head, and leaves the stages untouched.
    from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite

    X, y = data
    torch.manual_seed(0)
    path = tmp_path / "lite0.pth"
    torch.save(build_efficientnet_lite("efficientnet_lite0").state_dict(), path)
    clf = make_clf("efficientnet_lite0", weights=str(path), unfreeze=1, head_epochs=0, max_epochs=1, lr=0.01)
    clf.fit(X[:8], y[:8])
    backbone = clf.module_.backbone
    assert [g for g in backbone.layer_groups if g not in clf.module_.frozen_groups] == ["head_conv"]
    before = get_backbone("efficientnet_lite0", weights=str(path)).state_dict()
    after = backbone.state_dict()
    changed = {k.split(".")[1] for k in after if not torch.equal(after[k].cpu(), before[k])}
    assert changed == {"head_conv"}
    assert clf.predict(X[:4]).shape == (4,)

"""The fine-tuner's modules one by one: network positions, activation cache, callbacks, device, labels."""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from skorch.callbacks import EarlyStopping
from tiny_finetune import GROUPS, make_clf, make_data

from sktransfer.finetune import FineTuneNetwork
from sktransfer.finetune._activation_cache import (
    ActivationCache,
    enter,
    leave,
    mark_pretrained,
    route,
    shared_key,
)
from sktransfer.finetune._callbacks import CosineDecay, default_callbacks
from sktransfer.finetune._datasets import DecodedImages, TrainingDataset
from sktransfer.finetune._labels import class_weights, classes_of, encode_labels
from sktransfer.finetune._network import HEAD, suffix_start
from sktransfer.utils._device import resolve_device


@pytest.fixture
def network(tiny_backbone):
    return FineTuneNetwork(copy.deepcopy(tiny_backbone), n_classes=2).eval()


@pytest.fixture
def store(tiny_backbone):
    crops = torch.randint(0, 256, (6, 3, 28, 28), dtype=torch.uint8)
    return DecodedImages(crops, tiny_backbone.preprocessing.pil_transform())


def test_positions_and_forward_between_compose(network, store):
    assert network.positions() == [None, *GROUPS, "pre_logits", HEAD]
    images = store.images
    full = network(images)
    for start in network.positions()[1:]:
        middle = network.forward_between(images, None, start)
        torch.testing.assert_close(network.forward_suffix(middle, start), full)


@pytest.mark.parametrize("n_unfrozen,expected", [(0, HEAD), (1, "stage2"), (2, "stage1"), (3, None)])
def test_suffix_start(network, n_unfrozen, expected):
    assert suffix_start(network, n_unfrozen) == expected


def test_route_caches_and_enters_together(network, store):
    dataset = TrainingDataset(store, [0, 1] * 3)
    assert route(network, [store], "stage2", later=None, device="cpu", batch_size=4)
    assert network.input_start == store.cache.active == "stage2"
    x, _ = dataset[2]
    expected = network.forward_between(store.images[2:3], None, "stage2")[0]
    torch.testing.assert_close(x, expected)
    # Batches from the cache give the same logits as from images.
    torch.testing.assert_close(
        network(store.cache.values["stage2"][:2]), network.forward_suffix(store.images[:2], None)
    )
    leave(network)
    assert network.input_start is None


def test_route_derives_the_embedding_from_the_later_position(network, store):
    route(network, [store], HEAD, later="stage1", device="cpu", batch_size=4)
    assert set(store.cache.values) == {"stage1", HEAD} and network.input_start == HEAD
    torch.testing.assert_close(store.cache.values[HEAD], network.forward_between(store.images, None, HEAD))


def test_route_without_caching_empties_the_cache(network, store):
    route(network, [store], "stage2", device="cpu", batch_size=4)
    assert not route(network, [store], "stage2", enabled=False, device="cpu", batch_size=4)
    assert store.cache.values == {} and store.cache.active is None and network.input_start is None
    # The whole trunk training: nothing to cache.
    assert not route(network, [store], None, device="cpu", batch_size=4)


def test_activation_cache_refuses_beyond_its_bound(network, store, monkeypatch):
    from sktransfer.finetune import _activation_cache

    monkeypatch.setattr(_activation_cache, "MAX_CACHE_BYTES", 100)
    cache = ActivationCache()
    assert not cache.fill(network, store, "stage1", device="cpu", batch_size=4)
    assert cache.values == {}


def test_shared_key_only_for_pretrained_networks_and_paths(network, tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    identity = lambda: ("net", "weights")  # noqa: E731
    assert shared_key(network, identity, [str(path)]) is None  # not marked
    mark_pretrained(network)
    key = shared_key(network, identity, [str(path)])
    assert key[0] == ("net", "weights") and key[1][0][0] == str(path)
    assert shared_key(network, identity, [np.zeros((2, 2, 3))]) is None  # arrays: no identity
    assert shared_key(network, lambda: None, [str(path)]) is None  # unnamed weights
    enter(network, [], HEAD)
    leave(network)  # trained: no longer the pretrained prefix
    assert shared_key(network, identity, [str(path)]) is None


def test_default_callbacks_order_and_early_stopping():
    skorch_defaults = [("epoch_timer", object()), ("valid_acc", object()), ("print_log", object())]
    names = [name for name, _ in default_callbacks(skorch_defaults, early_stopping_patience=3)]
    assert names == ["phase_switch", "lr_schedule", "epoch_timer", "valid_acc", "early_stopping", "print_log"]
    stopping = dict(default_callbacks(skorch_defaults, early_stopping_patience=3))["early_stopping"]
    assert isinstance(stopping, EarlyStopping) and stopping.patience == 3 and stopping.load_best
    names = [name for name, _ in default_callbacks(skorch_defaults, early_stopping_patience=None)]
    assert "early_stopping" not in names


def test_cosine_scale_follows_the_half_cosine():
    decay = CosineDecay()
    decay.first_epoch_, decay.end_epoch_, decay.n_batches_ = 1, 5, 4  # 4 epochs, 4 batches each
    for epoch, batch in [(1, 0), (2, 2), (4, 3)]:
        decay.epoch_, decay.batch_ = epoch, batch
        progress = (epoch - 1 + batch / 4) / 4
        assert decay.scale(head_epochs=0) == pytest.approx(0.5 * (1 + np.cos(np.pi * progress)))
    decay.epoch_, decay.batch_ = 1, 2
    assert decay.scale(head_epochs=2) == 1.0  # still in the head phase


def test_label_encoding_and_balanced_weights():
    y = np.array(["b", "a", "b", "b"], dtype=object)
    classes = classes_of(y, None, owner="FineTuneClassifier")
    np.testing.assert_array_equal(encode_labels(y, classes), [1, 0, 1, 1])
    np.testing.assert_allclose(class_weights("balanced", classes, y), [4 / (2 * 1), 4 / (2 * 3)])
    np.testing.assert_array_equal(encode_labels(["a"], classes), [0])


def test_device_is_resolved_once_and_the_parameter_stays_as_set(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, device="auto", max_epochs=1).fit(X, y)
    # skorch moves tensors to the resolved device; the parameter stays "auto".
    assert clf.device == str(clf.device_) and clf.device_ == resolve_device("auto")
    assert clf.get_params()["device"] == "auto"
    assert clone(clf).get_params()["device"] == "auto" and clone(clf).device == "auto"
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.get_params()["device"] == "auto" and restored.device_ == clf.device_
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    # Set after fit, a device takes effect at the next fit; the network stays where it is.
    clf.set_params(device="cpu")
    assert clf.get_params()["device"] == "cpu" and clf.device == str(clf.device_)
    clf.fit(X, y)  # the next fit moves skorch to the new parameter
    assert clf.device == "cpu" and clf.device_ == torch.device("cpu") and clf.get_params()["device"] == "cpu"
    clf.set_params(device="auto").fit(X, y)
    assert clf.get_params()["device"] == "auto" and clf.device == str(clf.device_)
    unfitted = pickle.loads(pickle.dumps(make_clf(tiny_backbone, device="auto")))
    assert unfitted.device == "auto" and unfitted.get_params()["device"] == "auto"


def test_auto_batch_size_trains_and_predicts_in_batches_of_32(tiny_backbone):
    X, y = make_data(per_class=20)
    clf = make_clf(tiny_backbone, batch_size="auto", max_epochs=1, head_epochs=0, head_init="random").fit(X, y)
    assert [b["train_batch_size"] for b in clf.history[-1, "batches"]] == [32, 8]
    assert clf.get_params()["batch_size"] == "auto"
    assert clf.predict_proba(X).shape == (40, 2)


def test_partial_fit_continues_and_keeps_the_classes(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, max_epochs=1)
    clf.partial_fit(X, y)
    first = clf.module_.head[-1].weight.detach().clone()
    clf.partial_fit(X, y)
    assert len(clf.history) == 2 and list(clf.classes_) == ["ant", "bee"]
    assert not torch.equal(first, clf.module_.head[-1].weight)
    with pytest.raises(ValueError, match="never seen in fit"):
        clf.partial_fit(X[:2], np.array(["ant", "moth"], dtype=object))


@pytest.mark.parametrize("crop_mode", ["squash", "border"])
def test_training_images_take_the_preprocessings_crop_mode(crop_mode):
    from PIL import Image

    from sktransfer.backbones import Preprocessing
    from sktransfer.finetune._datasets import decode_training_images

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((20, 60), (50, 24))]
    pre = Preprocessing(resize_size=32, crop_size=32, crop_mode=crop_mode)
    expected = torch.stack([pre.pil_transform()(img) for img in images])
    # Without augmentation the stored crops, with it the evaluation crop of the stored resized images.
    plain = decode_training_images(images, pre)
    augmented = decode_training_images(images, pre, augment=lambda img: img)
    # (The stored images were resized in PIL, the direct crops on the uint8 tensor: one level apart at most.)
    for decoded, level in ((plain, 0), (augmented, 1)):
        got = torch.stack([decoded.eval_item(i) for i in range(2)])
        torch.testing.assert_close(got, expected, rtol=0, atol=level)
    # The mode is not the centre crop on these images.
    centre = Preprocessing(resize_size=32, crop_size=32).pil_transform()
    assert not torch.equal(torch.stack([centre(img) for img in images]), expected)

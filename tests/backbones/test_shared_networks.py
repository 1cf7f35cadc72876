"""Networks rebuilt from recipes: named, not carried, and loaded once per process."""

import gc
import pickle
import threading
from dataclasses import replace

import numpy as np
import pytest

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import _shared, make_tiny_backbone
from sktransfer.backbones._persist import backbone_recipe, check_recipe, recipe_has_tensors

TINY = dict(model="tiny_convnet", weights=None, num_workers=0, engine="torch")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for _ in range(3)]


def _named_recipe(**preprocessing):
    bb = make_tiny_backbone()
    bb.preprocessing = replace(bb.preprocessing, **preprocessing)
    return backbone_recipe(bb, "tiny_convnet", None, tensors=False)


def test_a_nameable_network_travels_without_its_tensors(images):
    est = PretrainedFeatureExtractor(**TINY).fit(images)
    saved = est.__getstate__()["backbone_"]
    assert saved["state_dict"] is None and saved["identity"] == "tiny_convnet|seed=0"
    with_tensors = backbone_recipe(est.backbone_, "tiny_convnet", None)
    assert recipe_has_tensors(with_tensors) and len(pickle.dumps(est)) < len(pickle.dumps(with_tensors)) / 2


def test_unpickled_extractors_share_one_network_built_on_first_use(images):
    blob = pickle.dumps(PretrainedFeatureExtractor(**TINY, layer="stage2").fit(images))
    other = pickle.dumps(PretrainedFeatureExtractor(**TINY).fit(images))
    a, b, c = pickle.loads(blob), pickle.loads(blob), pickle.loads(other)
    built = _shared.loaded_networks()[1]
    assert "backbone_" not in vars(a)  # nothing built by unpickling
    np.testing.assert_array_equal(a.transform(images), pickle.loads(blob).transform(images))
    assert a.backbone_ is b.backbone_ is c.backbone_  # one network, three extractors
    assert a._embedder is not c._embedder  # each with its own layer
    assert _shared.loaded_networks()[1] - built <= 1


def test_networks_on_different_devices_or_precisions_are_not_shared():
    recipe = _named_recipe()
    assert _shared.shared_backbone(recipe, ("cpu", "float32")) is _shared.shared_backbone(recipe, ("cpu", "float32"))
    assert _shared.shared_backbone(recipe, ("cpu", "float32")) is not _shared.shared_backbone(
        recipe, ("cpu", "bfloat16")
    )


def test_the_registry_keeps_only_the_recent_networks_alive():
    _shared.forget_networks()
    gc.collect()
    held_before = _shared.loaded_networks()[0]
    for size in (40, 41, 42, 43):  # four recipes, none kept by an estimator
        _shared.shared_backbone(_named_recipe(resize_size=size))
    gc.collect()
    assert _shared.loaded_networks()[0] - held_before == _shared.KEEP_RECENT
    _shared.forget_networks()
    gc.collect()
    assert _shared.loaded_networks()[0] <= held_before


def test_threads_materialise_one_network(images):
    est = pickle.loads(pickle.dumps(PretrainedFeatureExtractor(**TINY).fit(images)))
    seen = []

    def work():
        seen.append((id(est.backbone_), id(est._embedder)))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1


def test_repickling_before_first_use_keeps_the_recipe(images):
    est = pickle.loads(pickle.dumps(PretrainedFeatureExtractor(**TINY).fit(images)))
    again = est.__getstate__()["backbone_"]
    assert "backbone_" not in vars(est)  # pickling did not build it
    assert check_recipe(again) is again and again["state_dict"] is None

"""Saving and loading fitted extractors: pickle, joblib and skops, safely."""

import pickle

import numpy as np
import pytest
import torch
import torchvision
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from torch import nn

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import Backbone, Preprocessing
from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite

TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0)
EXTRACTOR_TYPE = "sktransfer.feature_extraction._extractor.PretrainedFeatureExtractor"


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (40, 44, 3), dtype=np.uint8) for _ in range(6)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_skops_round_trip_of_a_pipeline_trusts_one_sktransfer_type(images, tmp_path, engine):
    sio = pytest.importorskip("skops.io")
    y = np.array([0, 1, 0, 1, 1, 0])
    pipe = make_pipeline(PretrainedFeatureExtractor(**TINY, engine=engine), LogisticRegression()).fit(images, y)
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)
    assert sio.get_untrusted_types(file=path) == [EXTRACTOR_TYPE]
    with pytest.raises(Exception, match="Untrusted types"):
        sio.load(path)
    loaded = sio.load(path, trusted=[EXTRACTOR_TYPE])
    np.testing.assert_allclose(loaded.predict_proba(images), pipe.predict_proba(images), atol=1e-6)
    assert loaded[0]._engine == engine


def test_skops_round_trip_of_an_extractor_alone(images, tmp_path):
    sio = pytest.importorskip("skops.io")
    est = PretrainedFeatureExtractor(**TINY, engine="torch", layer="stage2", pooling="gem").fit(images)
    loaded = sio.loads(sio.dumps(est), trusted=[EXTRACTOR_TYPE])
    assert (loaded.layer, loaded.pooling, loaded.n_features_out_) == ("stage2", "gem", 32)
    np.testing.assert_array_equal(loaded.transform(images), est.transform(images))


def test_a_weights_file_is_named_not_carried_and_checked_on_first_use(images, tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "lite0.pth"
    torch.save(build_efficientnet_lite("efficientnet_lite0").state_dict(), path)
    est = PretrainedFeatureExtractor(model="efficientnet_lite0", weights=str(path), engine="torch", num_workers=0)
    est.fit(images[:2])
    blob = pickle.dumps(est)
    assert len(blob) < 100_000  # the file's name and hash travel, not its 19 MB
    restored = pickle.loads(blob)
    assert restored.backbone_.preprocessing == est.backbone_.preprocessing
    np.testing.assert_allclose(restored.transform(images[:2]), est.transform(images[:2]), atol=1e-6)
    # Rewritten since fitting: other weights must never embed silently.
    torch.manual_seed(4)
    torch.save(build_efficientnet_lite("efficientnet_lite0").state_dict(), path)
    with pytest.raises(ValueError, match="not the ones it was fitted with"):
        pickle.loads(blob).transform(images[:2])
    path.unlink()
    with pytest.raises(FileNotFoundError, match="saved by name, not with its tensors"):
        pickle.loads(blob).transform(images[:2])


def test_named_torchvision_weights_are_not_downloaded_on_load(images, monkeypatch):
    torch.manual_seed(4)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    calls = []

    def fake_download(self, *args, **kwargs):
        calls.append(self.url)
        return state

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", fake_download)
    est = PretrainedFeatureExtractor(model="squeezenet1_1", weights="DEFAULT", engine="torch", num_workers=0)
    est.fit(images[:2])
    assert len(calls) == 1
    saved = est.__getstate__()["backbone_"]
    assert saved["weights"] == "IMAGENET1K_V1"  # DEFAULT resolved, as torchvision named it
    restored = pickle.loads(pickle.dumps(est))
    assert len(calls) == 1
    np.testing.assert_allclose(restored.transform(images[:2]), est.transform(images[:2]), atol=1e-6)


class _UserNet(nn.Module):
    preprocessing = Preprocessing(resize_size=36, crop_size=32)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)

    def forward(self, x):
        return self.conv(x).relu()


def test_a_users_module_is_pickled_as_a_module(images):
    torch.manual_seed(5)
    est = PretrainedFeatureExtractor(model=_UserNet(), engine="torch", num_workers=0).fit(images)
    state = est.__getstate__()
    assert isinstance(state["backbone_"], Backbone)  # no recipe can rebuild a user's class
    restored = pickle.loads(pickle.dumps(est))
    assert restored.n_features_out_ == 5
    np.testing.assert_array_equal(restored.transform(images), est.transform(images))


def test_the_live_object_is_untouched_by_pickling(images):
    est = PretrainedFeatureExtractor(**TINY, engine="torch").fit(images)
    before = est.transform(images)
    pickle.dumps(est)
    assert isinstance(est.backbone_, Backbone) and est._runner is not None
    np.testing.assert_array_equal(est.transform(images), before)


def test_unpickled_extractor_builds_its_engine_once_under_threads(images):
    import threading

    est = pickle.loads(pickle.dumps(PretrainedFeatureExtractor(**TINY, engine="onnxruntime").fit(images)))
    assert est._runner is None
    runners, outs = [], []

    def work():
        outs.append(est.transform(images))
        runners.append(est._runner)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in runners}) == 1
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.real_weights
def test_a_fitted_default_extractor_pickles_small_and_loads_the_same(images):
    est = PretrainedFeatureExtractor(num_workers=0).fit(images[:2])
    blob = pickle.dumps(est)
    assert len(blob) < 100_000  # the packaged weights are named, not carried (19 MB)
    restored = pickle.loads(blob)
    np.testing.assert_allclose(restored.transform(images[:2]), est.transform(images[:2]), atol=1e-5)


def test_an_unwritable_cache_folder_does_not_stop_a_pickled_extractor(images, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SKTRANSFER_CACHE", str(blocker))
    est = PretrainedFeatureExtractor(**TINY, engine="onnxruntime")
    with pytest.warns(UserWarning, match="cannot use the graph cache folder"):
        est.fit(images)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.transform(images), est.transform(images), atol=1e-5)
    assert blocker.read_text().startswith("a file")

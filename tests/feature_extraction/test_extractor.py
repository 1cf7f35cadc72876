"""PretrainedFeatureExtractor: inputs, outputs, layers, engines, errors, persistence."""

import json
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sktransfer import ImageLoadError, PretrainedFeatureExtractor
from sktransfer.runtime import engine_available

TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, engine="torch")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, tiny_images):
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, arr in enumerate(tiny_images):
        path = folder / f"img{i}.png"  # PNG: lossless, so files equal the arrays
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def fitted(image_files):
    return PretrainedFeatureExtractor(**TINY).fit(image_files)


def test_output_is_float32_one_row_per_image(fitted, image_files):
    out = fitted.transform(image_files)
    assert out.dtype == np.float32
    assert out.shape == (len(image_files), fitted.n_features_out_) == (8, 64)
    assert np.isfinite(out).all()


def test_every_input_container_gives_the_same_embeddings(fitted, image_files, tiny_images):
    expected = fitted.transform(image_files)
    pil = [Image.fromarray(a) for a in tiny_images]
    same_size = np.stack([a[:40] for a in tiny_images])  # a 4-D uint8 batch
    variants = {
        "PIL": fitted.transform(pil),
        "arrays": fitted.transform(list(tiny_images)),
        "Series": fitted.transform(pd.Series(image_files)),
        "DataFrame": fitted.transform(pd.DataFrame({"path": image_files})),
        "object array": fitted.transform(np.array(image_files, dtype=object)),
    }
    for name, out in variants.items():
        np.testing.assert_allclose(out, expected, atol=1e-5, err_msg=name)
    batch = fitted.transform(same_size)
    tensor = fitted.transform(torch.from_numpy(same_size).permute(0, 3, 1, 2))
    np.testing.assert_allclose(batch, tensor, atol=1e-5)
    np.testing.assert_allclose(batch, fitted.transform([a for a in same_size]), atol=1e-5)


def test_deterministic_and_batch_size_independent(image_files):
    a = PretrainedFeatureExtractor(**{**TINY, "batch_size": 3}).fit(image_files).transform(image_files)
    b = PretrainedFeatureExtractor(**{**TINY, "batch_size": 8, "num_workers": 2}).fit(image_files)
    np.testing.assert_allclose(a, b.transform(image_files), atol=1e-5)
    np.testing.assert_array_equal(b.transform(image_files), b.transform(image_files))


def test_feature_names_and_pandas_output(fitted, image_files):
    names = fitted.get_feature_names_out()
    assert len(names) == 64 and names[0] == "pretrainedfeatureextractor0"
    est = clone(fitted).set_output(transform="pandas").fit(image_files)
    series = pd.Series(image_files, index=[f"id{i}" for i in range(8)])
    df = est.transform(series)
    assert isinstance(df, pd.DataFrame) and list(df.index) == list(series.index)
    assert list(df.columns) == list(names)


@pytest.mark.parametrize(
    "layer, pooling, width",
    [
        (None, None, 64),
        (None, "avgmax", 128),
        ("stage1", None, 16),
        ("stage2", "gem", 32),
        ("stage2", "max", 32),
        ("stage1.0", None, 16),
        ("groups.stem.0", "avg", 8),
    ],
)
def test_layers_and_poolings(image_files, layer, pooling, width):
    est = PretrainedFeatureExtractor(**TINY, layer=layer, pooling=pooling).fit(image_files)
    out = est.transform(image_files[:3])
    assert out.shape == (3, width) and est.n_features_out_ == width


def test_unknown_layer_names_the_groups(image_files):
    with pytest.raises(ValueError, match=r"layer='conv99'.*\['stem', 'stage1', 'stage2', 'stage3'\]"):
        PretrainedFeatureExtractor(**TINY, layer="conv99").fit(image_files)


def test_unreadable_image_raises_naming_the_file(fitted, image_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        fitted.transform(image_files[:2] + [str(bad)])
    with pytest.raises(ImageLoadError, match="missing.png"):
        fitted.transform([str(tmp_path / "missing.png")])


def test_on_error_nan_keeps_rows_aligned_and_warns_once(image_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    est = PretrainedFeatureExtractor(**TINY, on_error="nan").fit(image_files)
    X = image_files[:2] + [str(bad)] + image_files[2:4] + [str(tmp_path / "gone.png")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = est.transform(X)
    msgs = [str(w.message) for w in caught if "could not be read" in str(w.message)]
    assert len(msgs) == 1 and "broken.jpg" in msgs[0] and "gone.png" in msgs[0] and msgs[0].startswith("2 of 6")
    assert np.isnan(out[[2, 5]]).all() and np.isfinite(out[[0, 1, 3, 4]]).all()
    np.testing.assert_allclose(out[[0, 1, 3, 4]], est.transform(X[:2] + X[3:5]), atol=1e-5)


def test_bad_containers_are_clear_errors(fitted, image_files):
    with pytest.raises(ValueError, match="wrap it in a list"):
        fitted.transform(image_files[0])
    with pytest.raises(ValueError, match="2 columns"):
        fitted.transform(pd.DataFrame({"a": image_files, "b": image_files}))
    # No images: no rows, the fitted width (dask builds its meta this way);
    # fitting on nothing is still an error.
    assert fitted.transform([]).shape == (0, fitted.n_features_out_)
    with pytest.raises(ValueError, match="empty"):
        PretrainedFeatureExtractor(**TINY).fit([])


def test_numeric_table_rows_are_flattened_images():
    from sklearn.datasets import load_digits

    X = load_digits().data[:10] / 16.0  # 64 columns -> 8x8 greyscale images in [0, 1]
    est = PretrainedFeatureExtractor(**TINY).fit(X)
    out = est.transform(X)
    assert out.shape == (10, 64) and est.n_features_in_ == 64
    images = (X.reshape(10, 8, 8) * 255).round().astype(np.uint8)
    on_images = PretrainedFeatureExtractor(**TINY).fit(list(images))
    np.testing.assert_allclose(out, on_images.transform(list(images)), atol=1e-5)
    # Fitted on a table, it keeps expecting tables of the same width.
    with pytest.raises(ValueError, match="expecting 64 features"):
        est.transform(X[:, :10])
    with pytest.raises(ValueError, match="cannot be reshaped"):
        PretrainedFeatureExtractor(**TINY, image_shape=(7, 7)).fit(X)


def test_pickle_round_trip_saves_a_recipe_not_a_network(fitted, image_files):
    state = fitted.__getstate__()
    # A named network travels as its name, never as a pickled module; the
    # seeded test network can be rebuilt from it, so without its tensors.
    recipe = state["backbone_"]
    assert set(recipe) == {"format", "model", "weights", "preprocessing", "state_dict", "identity", "digest"}
    assert recipe["model"] == "tiny_convnet" and recipe["state_dict"] is None
    assert recipe["identity"] == "tiny_convnet|seed=0"
    assert recipe["preprocessing"]["crop_size"] == fitted.backbone_.preprocessing.crop_size == 32
    assert hasattr(fitted, "backbone_") and not isinstance(fitted.backbone_, dict)
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored._embedder.backbone is restored.backbone_
    assert not any(p.requires_grad for p in restored.backbone_.parameters())
    np.testing.assert_array_equal(restored.transform(image_files), fitted.transform(image_files))


def test_clone_and_set_params_rebuild_the_network(image_files):
    est = PretrainedFeatureExtractor(**TINY).fit(image_files)
    other = clone(est).set_params(pooling="avgmax")
    assert not hasattr(other, "backbone_")
    assert other.fit(image_files).transform(image_files[:2]).shape == (2, 128)
    assert est.transform(image_files[:2]).shape == (2, 64)


def test_transform_before_fit_raises(image_files):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PretrainedFeatureExtractor(**TINY).transform(image_files)


def test_pipeline_memory_extracts_once_for_a_grid(image_files, tmp_path, monkeypatch):
    calls = []
    original = PretrainedFeatureExtractor.transform

    def counting(self, X):
        calls.append(len(X))
        return original(self, X)

    monkeypatch.setattr(PretrainedFeatureExtractor, "transform", counting)
    y = np.array([0, 1] * 4)
    pipe = Pipeline(
        [("emb", PretrainedFeatureExtractor(**TINY)), ("clf", LogisticRegression())],
        memory=joblib.Memory(tmp_path / "cache", verbose=0),
    )
    pipe.fit(image_files, y)
    first = len(calls)
    grid = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=2).fit(image_files, y)
    # Each CV split is embedded once (cached) plus its test folds, not once per C.
    fits_without_cache = 3 * 2
    assert sum(1 for n in calls[first:] if n == 4) < fits_without_cache * 2
    assert grid.best_params_["clf__C"] in (0.1, 1.0, 10.0)


def test_onnxruntime_engine_matches_torch(image_files, monkeypatch, tmp_path):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))
    cpu = {**TINY, "device": "cpu"}  # the graph engines run on the CPU
    torch_out = PretrainedFeatureExtractor(**cpu).fit(image_files).transform(image_files)
    ort = PretrainedFeatureExtractor(**{**cpu, "engine": "onnxruntime"}).fit(image_files)
    np.testing.assert_allclose(ort.transform(image_files), torch_out, atol=1e-4, rtol=1e-4)
    auto = PretrainedFeatureExtractor(**{**cpu, "engine": "auto"}).fit(image_files)
    # OpenVINO first where it is installed (it is a dependency where it has wheels).
    assert engine_available("onnxruntime") and auto._engine == (
        "openvino" if engine_available("openvino") else "onnxruntime"
    )
    # Module-name layers need hooks, which do not export: auto falls back.
    hooked = PretrainedFeatureExtractor(**{**cpu, "engine": "auto", "layer": "stage1.0"}).fit(image_files)
    assert hooked._engine == "torch"
    with pytest.raises(ValueError, match="engine='onnxruntime'"):
        PretrainedFeatureExtractor(**{**cpu, "engine": "onnxruntime", "layer": "stage1.0"}).fit(image_files)
    # The seeded tiny network is reproducible: its graph is cached on disk...
    assert len(list(tmp_path.rglob("*.onnx"))) == 1
    # ...but a module passed in is not, so nothing more is written.
    from sktransfer.backbones import make_tiny_backbone

    module = {**TINY, "engine": "onnxruntime", "model": make_tiny_backbone(seed=5)}
    PretrainedFeatureExtractor(**module).fit(image_files).transform(image_files[:2])
    assert len(list(tmp_path.rglob("*.onnx"))) == 1


@pytest.mark.real_weights
@pytest.mark.real_data
@pytest.mark.parametrize("engine", ["torch", "auto"])
def test_efficientnet_lite0_reproduces_the_reference_features(reference_dir, data_dir, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path))
    meta = json.loads((reference_dir / "efficientnet_lite0_hymenoptera.json").read_text())
    ref = np.load(reference_dir / "efficientnet_lite0_hymenoptera.npz")
    paths = [str(data_dir.parent / p) for p in meta["images"]]
    est = PretrainedFeatureExtractor(engine=engine, batch_size=2).fit(paths)
    out = est.transform(paths)
    # The reference inputs were resized in PIL; the library resizes on the
    # uint8 tensor, a level off on a few values per thousand (measured: 0.013
    # at most, cosine >= 0.99999; a crop one pixel off gives cosine 0.97).
    assert np.abs(out - ref["pooled"]).max() < 0.03
    cosine = (out * ref["pooled"]).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref["pooled"], axis=1)
    assert cosine.min() > 0.9999
    if engine == "auto":
        assert len(list(tmp_path.rglob("*.onnx"))) == 1, "named weights are cached on disk"

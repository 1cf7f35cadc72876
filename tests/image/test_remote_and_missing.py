"""URLs read through fsspec, and missing values in image collections."""

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sktransfer.image import ImageLoadError, check_images, load_image
from sktransfer.image._remote import is_url

fsspec = pytest.importorskip("fsspec")  # the optional "remote" extra

PIXELS = np.random.default_rng(3).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def _png():
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def memory_url():
    url = f"memory://sktransfer-tests/{id(object())}/photo.png"
    with fsspec.open(url, "wb") as file:
        file.write(_png())
    yield url
    fsspec.filesystem("memory").rm(url)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("s3://b/x.jpg", True),
        ("gs://b/x.jpg", True),
        ("https://h/x.jpg", True),
        ("memory://x.png", True),
        ("file:///tmp/x.png", True),
        ("x.jpg", False),
        ("C:/x.jpg", False),
        ("C:\\x.jpg", False),
        ("a:b.jpg", False),
    ],
)
def test_is_url(text, expected):
    assert is_url(text) is expected


def test_memory_url_decodes_to_the_same_pixels(memory_url):
    assert np.array_equal(np.asarray(load_image(memory_url)), PIXELS)


def test_file_url_equals_the_path(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(_png())
    assert np.array_equal(np.asarray(load_image(path.as_uri())), np.asarray(load_image(str(path))))


def test_missing_memory_url_is_an_image_load_error():
    with pytest.raises(ImageLoadError, match="memory://nowhere/gone.png: file not found"):
        load_image("memory://nowhere/gone.png")


def test_extractor_embeds_urls_like_paths(memory_url, tmp_path):
    from sktransfer import PretrainedFeatureExtractor

    path = tmp_path / "photo.png"
    path.write_bytes(_png())
    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch")
    out = est.fit_transform([memory_url, str(path), path.as_uri()])
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])


def test_missing_fsspec_is_an_import_error_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fsspec" else real(name, *a))
    with pytest.raises(ImportError, match=r"sktransfer\[remote\]"):
        check_images(["ok.jpg", "s3://bucket/cat.jpg"])


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, pd.NaT])
def test_extractor_gives_nan_rows_for_missing_values_and_one_warning(missing):
    from sktransfer import PretrainedFeatureExtractor

    images = [PIXELS, missing, PIXELS[::-1], missing]
    est = PretrainedFeatureExtractor(
        model="tiny_convnet", weights=None, num_workers=0, engine="torch", on_error="nan"
    ).fit([PIXELS])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = est.transform(pd.Series(images, dtype=object))
    assert np.isnan(out[[1, 3]]).all() and np.isfinite(out[[0, 2]]).all()
    messages = [str(w.message) for w in caught if "could not be read" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith("2 of 4 images")
    assert "X[1] (missing): missing value" in messages[0] and "X[3] (missing)" in messages[0]


def test_extractor_refuses_missing_values_with_on_error_raise_naming_the_index():
    from sktransfer import PretrainedFeatureExtractor

    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, engine="torch").fit([PIXELS])
    with pytest.raises(ValueError, match=r"X\[2\] is missing .*1 of 3 items.*on_error='nan'"):
        est.transform([PIXELS, PIXELS, None])


def test_nan_rows_flow_into_a_nan_aware_model():
    # A table where some rows lack a photo goes through a ColumnTransformer
    # into HistGradientBoosting, which handles the NaN embeddings.
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    from sktransfer import PretrainedFeatureExtractor

    frame = pd.DataFrame({"photo": [PIXELS, None, PIXELS[::-1], np.nan] * 3, "age": np.arange(12.0)})
    y = np.arange(12) % 2
    embed = PretrainedFeatureExtractor(
        model="tiny_convnet", weights=None, num_workers=0, engine="torch", on_error="nan"
    )
    model = make_pipeline(
        ColumnTransformer([("photo", embed, ["photo"]), ("age", "passthrough", ["age"])]),
        HistGradientBoostingClassifier(max_iter=5),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(frame, y)
        assert model.predict(frame).shape == (12,)

"""Checks that an image estimator keeps scikit-learn's API on images.

scikit-learn's ``check_estimator`` feeds estimators numeric tables. Image
estimators read a table only when its rows are unambiguous flattened images
(square greyscale or RGB), so several of those checks fail by design. This
suite covers the same ground on real image collections: every container
gives the same output, sample order and subsets do not matter, clones and
pickles behave, fitted attributes are set and unfitted use is refused.

Each check takes an unfitted estimator, works on a clone and raises
``AssertionError`` with what went wrong. Files are written only to a
temporary directory that is removed afterwards.
"""

from __future__ import annotations

import functools
import os
import pathlib
import pickle
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.exceptions import NotFittedError

__all__ = ["check_image_estimator", "image_estimator_checks", "make_image_data"]

# Small enough to keep a fit in the suite cheap on two CPU cores, large
# enough for a convolutional trunk to see structure.
_N_IMAGES = 8
_SIDE = 16
# Outputs of the same pixels through the same network must agree closely;
# float32 reductions may still differ in the last bits between batches.
_ATOL = 1e-4


def make_image_data(
    n_images: int = _N_IMAGES, side: int = _SIDE, seed: int = 0
) -> tuple[list[NDArray[np.uint8]], NDArray[np.int_]]:
    """Random RGB images (uint8 HWC arrays) and two balanced labels.

    Class 1 images are brighter, so a classifier has something to learn.

    Parameters
    ----------
    n_images : int, default=8
    side : int, default=16
        Height and width of every image.
    seed : int, default=0

    Returns
    -------
    images : list of numpy.ndarray
        ``n_images`` arrays of shape (side, side, 3), dtype uint8.
    y : numpy.ndarray of shape (n_images,)
        Labels 0 and 1, alternating.

    Examples
    --------
    >>> images, y = make_image_data(4, side=8)
    >>> images[0].shape, y.tolist()
    ((8, 8, 3), [0, 1, 0, 1])
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n_images) % 2
    images = [rng.integers(0, 128, (side, side, 3)).astype(np.uint8) + np.uint8(120 * label) for label in y]
    return images, y


@contextmanager
def _image_files(images):
    """Write ``images`` as PNG files (lossless) in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="sktransfer-checks-") as folder:
        paths = []
        for index, image in enumerate(images):
            path = os.path.join(folder, f"image_{index:03d}.png")
            Image.fromarray(image).save(path)
            paths.append(path)
        yield paths


def _seeded_clone(estimator):
    """A clone with a fixed ``random_state`` when it has one, for repeatable fits."""
    estimator = clone(estimator)
    if "random_state" in estimator.get_params() and estimator.get_params()["random_state"] is None:
        estimator.set_params(random_state=0)
    return estimator


def _output_method(estimator):
    """The method whose output the checks compare: transform, else predict_proba/predict."""
    for name in ("transform", "predict_proba", "predict"):
        if hasattr(estimator, name):
            return name
    raise AssertionError(f"{type(estimator).__name__} has none of transform, predict_proba, predict")


def _output(estimator, X):
    return np.asarray(getattr(estimator, _output_method(estimator))(X))


def _fit(estimator, X, y):
    returned = estimator.fit(X, y) if is_classifier(estimator) else estimator.fit(X)
    assert returned is estimator, f"{type(estimator).__name__}.fit must return self"
    return estimator


def _assert_same(expected, actual, what):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=_ATOL, err_msg=what)


def check_image_containers(estimator: BaseEstimator) -> None:
    """Paths, PIL images, HWC arrays, batches, CHW tensors and pandas give one output."""
    import pandas as pd
    import torch

    images, y = make_image_data()
    fitted = _fit(_seeded_clone(estimator), images, y)
    reference = _output(fitted, images)
    assert len(reference) == len(images)
    batch = np.stack(images)
    with _image_files(images) as paths:
        containers = {
            "list of paths": paths,
            "tuple of pathlib paths": tuple(map(pathlib.Path, paths)),
            "list of PIL images": [Image.fromarray(image) for image in images],
            "4-D array (N, H, W, C)": batch,
            "list of CHW tensors": [torch.from_numpy(image).permute(2, 0, 1) for image in images],
            "4-D tensor (N, C, H, W)": torch.from_numpy(batch).permute(0, 3, 1, 2),
            "pandas Series of paths": pd.Series(paths, index=np.arange(len(paths)) * 10),
            "one-column DataFrame of paths": pd.DataFrame({"image": paths}),
            "list of encoded bytes": [open(path, "rb").read() for path in paths],
        }
        for name, X in containers.items():
            _assert_same(reference, _output(fitted, X), f"output on a {name} differs from HWC arrays")


def check_image_fit_containers(estimator: BaseEstimator) -> None:
    """Fitting on paths or on arrays of the same pixels gives the same model."""
    images, y = make_image_data()
    on_arrays = _output(_fit(_seeded_clone(estimator), images, y), images)
    with _image_files(images) as paths:
        on_paths = _output(_fit(_seeded_clone(estimator), paths, y), images)
    _assert_same(on_arrays, on_paths, "fit on paths and fit on arrays disagree")


def check_image_sample_order_invariance(estimator: BaseEstimator) -> None:
    """Permuting the images permutes the output rows, nothing else."""
    images, y = make_image_data()
    fitted = _fit(_seeded_clone(estimator), images, y)
    order = np.random.default_rng(1).permutation(len(images))
    _assert_same(
        _output(fitted, images)[order],
        _output(fitted, [images[i] for i in order]),
        "output rows depend on the order of the images",
    )


def check_image_subset_invariance(estimator: BaseEstimator) -> None:
    """An image's output does not depend on which other images share the call."""
    images, y = make_image_data()
    fitted = _fit(_seeded_clone(estimator), images, y)
    whole = _output(fitted, images)
    for start in range(0, len(images), 3):
        part = _output(fitted, images[start : start + 3])
        _assert_same(whole[start : start + 3], part, f"images {start}.. differ when passed alone")
    _assert_same(whole[3:4], _output(fitted, [images[3]]), "a single image's output differs")


def check_image_clone_and_pickle(estimator: BaseEstimator) -> None:
    """A clone refits to the same output; a pickled fitted estimator predicts the same."""
    images, y = make_image_data()
    first = _fit(_seeded_clone(estimator), images, y)
    expected = _output(first, images)
    again = _fit(clone(first), images, y)
    _assert_same(expected, _output(again, images), "a clone fitted the same way disagrees")
    restored = pickle.loads(pickle.dumps(first))
    assert type(restored) is type(first)
    _assert_same(expected, _output(restored, images), "the unpickled estimator disagrees")


def check_image_fitted_attributes(estimator: BaseEstimator) -> None:
    """n_features_out_ / classes_ describe the output; images set no n_features_in_."""
    images, y = make_image_data()
    fitted = _fit(_seeded_clone(estimator), images, y)
    assert not hasattr(fitted, "n_features_in_"), "an estimator fitted on images has no fixed number of input features"
    if hasattr(fitted, "transform"):
        out = fitted.transform(images)
        assert out.shape == (len(images), fitted.n_features_out_), (
            f"transform gave {out.shape}, n_features_out_ is {fitted.n_features_out_}"
        )
        names = fitted.get_feature_names_out()
        assert len(names) == fitted.n_features_out_ and len(set(names)) == len(names)
    if is_classifier(fitted):
        np.testing.assert_array_equal(fitted.classes_, np.unique(y))
        predicted = fitted.predict(images)
        assert set(np.unique(predicted)) <= set(fitted.classes_)
        proba = fitted.predict_proba(images)
        assert proba.shape == (len(images), len(fitted.classes_))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(predicted, fitted.classes_[proba.argmax(axis=1)])


def check_image_string_labels(estimator: BaseEstimator) -> None:
    """A classifier keeps string labels as they were given."""
    images, y = make_image_data()
    labels = np.array(["ant", "bee"], dtype=object)[y]
    fitted = _fit(_seeded_clone(estimator), images, labels)
    np.testing.assert_array_equal(fitted.classes_, ["ant", "bee"])
    assert set(fitted.predict(images)) <= {"ant", "bee"}


def check_image_not_fitted(estimator: BaseEstimator) -> None:
    """transform/predict before fit raise NotFittedError, not AttributeError."""
    images, y = make_image_data(4)
    unfitted = clone(estimator)
    methods = [m for m in ("transform", "predict", "predict_proba", "decision_function") if hasattr(unfitted, m)]
    assert methods, "no prediction method to check"
    # Bind each method now: a closure over the loop variable would call the last one.
    calls = {name: functools.partial(getattr(unfitted, name), images) for name in methods}
    if hasattr(unfitted, "score") and is_classifier(unfitted):
        calls["score"] = lambda: unfitted.score(images, y)
    for name, call in calls.items():
        try:
            call()
        except NotFittedError:
            continue
        except Exception as exc:
            raise AssertionError(f"{name} before fit raised {type(exc).__name__} ({exc}), not NotFittedError") from exc
        raise AssertionError(f"{name} before fit did not raise NotFittedError")


def check_image_set_output_pandas(estimator: BaseEstimator) -> None:
    """A transformer's set_output(transform="pandas") names the columns and keeps the index."""
    import pandas as pd

    images, y = make_image_data()
    fitted = _fit(_seeded_clone(estimator), images, y)
    plain = fitted.transform(images)
    fitted.set_output(transform="pandas")
    with _image_files(images) as paths:
        series = pd.Series(paths, index=[f"img{i}" for i in range(len(paths))])
        frame = fitted.transform(series)
    assert isinstance(frame, pd.DataFrame), f"set_output gave {type(frame).__name__}"
    assert list(frame.columns) == list(fitted.get_feature_names_out())
    assert list(frame.index) == list(series.index), "the input's index was not kept"
    _assert_same(plain, frame.to_numpy(), "pandas output differs from the array output")


def check_image_inputs_unchanged(estimator: BaseEstimator) -> None:
    """fit and predict leave the caller's images untouched."""
    images, y = make_image_data()
    batch = np.stack(images)
    kept = batch.copy()
    fitted = _fit(_seeded_clone(estimator), batch, y)
    _output(fitted, batch)
    np.testing.assert_array_equal(batch, kept, err_msg="the input batch was modified")


def check_image_table_contract(estimator: BaseEstimator) -> None:
    """Square tables are flattened images; other widths are refused, and so are images after a table."""
    images, y = make_image_data(side=8)
    grey = np.stack([image[..., 0] for image in images])
    table = grey.reshape(len(grey), -1)
    on_table = _fit(_seeded_clone(estimator), table, y)
    assert on_table.n_features_in_ == table.shape[1]
    on_images = _fit(_seeded_clone(estimator), list(grey), y)
    _assert_same(
        _output(on_images, list(grey)),
        _output(on_table, table),
        "a square table's rows are not read as the greyscale images",
    )
    _expect_value_error(lambda: _output(on_table, list(grey)), "fitted on a numeric table")
    _expect_value_error(lambda: _fit(_seeded_clone(estimator), table[:, :10], y), "image_shape")


def _expect_value_error(call, fragment):
    try:
        call()
    except ValueError as exc:
        assert fragment in str(exc), f"error {str(exc)!r} does not mention {fragment!r}"
        return
    raise AssertionError(f"no ValueError mentioning {fragment!r}")


_CHECKS = (
    check_image_not_fitted,
    check_image_containers,
    check_image_fit_containers,
    check_image_sample_order_invariance,
    check_image_subset_invariance,
    check_image_clone_and_pickle,
    check_image_fitted_attributes,
    check_image_string_labels,
    check_image_set_output_pandas,
    check_image_inputs_unchanged,
    check_image_table_contract,
)


def image_estimator_checks(estimator: BaseEstimator) -> Iterator[Callable[[BaseEstimator], None]]:
    """Yield the image checks that apply to ``estimator``.

    Use it to parametrize a test, one test per check, as scikit-learn's
    ``parametrize_with_checks`` does for tabular checks.

    Parameters
    ----------
    estimator : estimator instance
        An unfitted image estimator (a transformer, or a classifier).

    Yields
    ------
    callable
        ``check(estimator)``, raising AssertionError on a violation.

    Examples
    --------
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None)
    >>> [check.__name__ for check in image_estimator_checks(est)][:2]
    ['check_image_not_fitted', 'check_image_containers']
    """
    for check in _CHECKS:
        if check is check_image_string_labels and not is_classifier(estimator):
            continue
        if check is check_image_set_output_pandas and not hasattr(estimator, "transform"):
            continue
        yield check


def check_image_estimator(estimator: BaseEstimator) -> None:
    """Run every image check on ``estimator``.

    Parameters
    ----------
    estimator : estimator instance
        An unfitted image estimator.

    Raises
    ------
    AssertionError
        At the first check that fails, naming it.

    Examples
    --------
    ``check_image_estimator(est)`` fits ``est`` about a dozen times (seconds
    with a tiny random network); each check can also run alone:

    >>> from sktransfer import PretrainedFeatureExtractor
    >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, engine="torch")
    >>> check_image_not_fitted(est)
    """
    for check in image_estimator_checks(estimator):
        try:
            check(estimator)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__} failed for {estimator!r}: {exc}") from exc

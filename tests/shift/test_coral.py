"""CORAL: second-order alignment, identity on target rows, Pipeline use."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import CORAL


def sensor_shift(seed=0, n=600):
    """Two classes; the target 'sensor' rescales and offsets every feature."""
    rng = np.random.default_rng(seed)

    def draw(scale, offset):
        y = rng.integers(0, 2, n)
        X = rng.normal(size=(n, 2)) + np.c_[2.0 * y, -2.0 * y]
        return X * scale + offset, y

    return draw(1.0, 0.0), draw(np.array([3.0, 0.4]), np.array([1.0, -1.0]))


def test_aligned_source_has_target_mean_and_covariance():
    rng = np.random.default_rng(0)
    X_source = rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 3))
    X_target = rng.normal(size=(1500, 3)) @ rng.normal(size=(3, 3)) + 5.0
    aligned = CORAL(regularization=1e-6).fit_transform(X_source, X_target=X_target)
    np.testing.assert_allclose(aligned.mean(axis=0), X_target.mean(axis=0), atol=1e-8)
    np.testing.assert_allclose(np.cov(aligned, rowvar=False), np.cov(X_target, rowvar=False), atol=1e-4)


def test_transform_leaves_target_rows_alone_and_align_maps_source_rows():
    (X_source, _), (X_target, _) = sensor_shift()
    coral = CORAL().fit(X_source, X_target=X_target)
    np.testing.assert_array_equal(coral.transform(X_target), X_target)
    np.testing.assert_allclose(coral.align(X_source), coral.fit_transform(X_source, X_target=X_target))


def test_pipeline_trains_on_aligned_source_and_beats_no_alignment():
    (X_source, y_source), (X_target, y_target) = sensor_shift()
    plain = LogisticRegression().fit(X_source, y_source).score(X_target, y_target)
    pipe = make_pipeline(CORAL(regularization=0.01), LogisticRegression())
    pipe.fit(X_source, y_source, coral__X_target=X_target)
    # The unaligned model misplaces the boundary (~0.5-0.7); CORAL restores it.
    assert pipe.score(X_target, y_target) > plain + 0.15
    assert pipe.score(X_target, y_target) > 0.9


def test_without_target_the_alignment_is_the_identity():
    X = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_allclose(CORAL().fit_transform(X), X, atol=1e-10)


def test_feature_mismatch_error_names_the_backbone():
    with pytest.raises(ValueError, match="same backbone"):
        CORAL().fit(np.zeros((10, 1280)), X_target=np.zeros((10, 1024)))


def test_feature_names_pass_through():
    X = np.random.default_rng(0).normal(size=(20, 2))
    coral = CORAL().fit(X, X_target=X + 1)
    assert coral.get_feature_names_out(["a", "b"]).tolist() == ["a", "b"]


def test_alignment_is_the_papers_whitening_then_recolouring():
    # Independent computation with scipy's matrix square root; the ridge is
    # lambda times the mean variance, added to both covariances.
    from scipy.linalg import inv, sqrtm

    rng = np.random.default_rng(1)
    X_source = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 3))
    X_target = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 3))

    def regularised(X, lam):
        cov = np.cov(X, rowvar=False)
        return cov + lam * np.trace(cov) / 3 * np.eye(3)

    coral = CORAL(regularization=0.5).fit(X_source, X_target=X_target)
    expected = inv(sqrtm(regularised(X_source, 0.5))) @ sqrtm(regularised(X_target, 0.5))
    np.testing.assert_allclose(coral.alignment_, np.real(expected), atol=1e-10)
    np.testing.assert_allclose(
        CORAL(regularization=0.5, match_mean=False).fit(X_source, X_target=X_target).align(X_source).mean(axis=0),
        X_source.mean(axis=0),
        atol=1e-10,
    )

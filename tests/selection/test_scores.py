"""LogME, LEEP and NCE against independent computations and known answers."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from sktransfer.selection import leep_score, logme_score, nce_score
from sktransfer.selection._scores import _logme_evidence


def _evidence_fast(F, y, alpha, beta):
    u, s, _ = np.linalg.svd(F, full_matrices=False)
    return _logme_evidence(alpha, beta, s**2, u.T @ y, y @ y, *F.shape)[0]


def _evidence_slow(F, y, alpha, beta):
    # The marginal likelihood written directly: y ~ N(0, I/beta + F F'/alpha).
    n = len(y)
    cov = np.eye(n) / beta + F @ F.T / alpha
    return multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y) / n


@pytest.mark.parametrize("n, dim", [(30, 5), (12, 40)])  # more samples than features, and fewer
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.3, 7.0), (20.0, 0.5)])
def test_logme_evidence_matches_gaussian_marginal_likelihood(n, dim, alpha, beta):
    rng = np.random.default_rng(n + dim)
    F = rng.normal(size=(n, dim))
    y = (rng.random(n) > 0.5).astype(float)
    assert _evidence_fast(F, y, alpha, beta) == pytest.approx(_evidence_slow(F, y, alpha, beta), rel=1e-9)


def test_logme_is_the_evidence_at_its_maximum():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 25)
    F = rng.normal(size=(50, 6)) + 1.5 * y[:, None]
    # With two classes the score is the mean over both one-hot targets.
    best = np.mean(
        [
            max(
                _evidence_slow(F, (y == k).astype(float), a, b)
                for a in np.geomspace(1e-3, 1e3, 61)
                for b in np.geomspace(1e-2, 1e3, 61)
            )
            for k in (0, 1)
        ]
    )
    score = logme_score(F, y)
    # The fixed point reaches at least the best value of a fine grid, and no grid point beats it.
    assert score >= best - 1e-3
    assert score == pytest.approx(best, abs=0.02)


def test_logme_prefers_separated_classes_and_ranks_by_separation():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    base = rng.normal(size=(120, 16))
    means = rng.normal(size=(3, 16))
    scores = [logme_score(base + gap * means[y], y) for gap in (0.0, 0.5, 1.0, 3.0)]
    assert scores == sorted(scores) and scores[0] < scores[-1] - 0.1


def test_logme_ignores_label_names():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(40, 4))
    y = np.repeat([0, 1], 20)
    assert logme_score(F, np.where(y, "bee", "ant")) == pytest.approx(logme_score(F, y))


def test_leep_hand_computed():
    theta = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 0])
    # joint P(y, z) = sum of theta rows per class / n; P(y|z) = joint / P(z).
    joint = np.array([[1.5, 0.5], [0.2, 0.8]]) / 3
    cond = joint / joint.sum(0)
    expected = np.mean(np.log([theta[i] @ cond[y[i]] for i in range(3)]))
    assert leep_score(theta, y) == pytest.approx(expected)
    assert leep_score(theta, y) == pytest.approx(-0.40869, abs=1e-4)  # worked by hand


def test_nce_hand_computed():
    theta = np.array([[0.9, 0.1, 0.0], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    y = np.array([0, 1, 1, 1])
    # z = [0, 0, 2, 1]: z=0 holds one of each label (entropy log 2, weight 1/2), the others are pure.
    assert nce_score(theta, y) == pytest.approx(-0.5 * np.log(2))


def test_source_scores_are_zero_when_the_source_label_decides_the_target():
    y = np.array([0, 0, 1, 1, 2])
    theta = np.eye(4)[[3, 3, 0, 0, 1]]
    assert leep_score(theta, y) == pytest.approx(0.0, abs=1e-12)
    assert nce_score(theta, y) == pytest.approx(0.0, abs=1e-12)
    # A useless source (the same prediction everywhere) scores -H(Y).
    flat = np.full((5, 4), 0.25)
    entropy = -np.sum([p * np.log(p) for p in (0.4, 0.4, 0.2)])
    assert leep_score(flat, y) == pytest.approx(-entropy)


@pytest.mark.parametrize(
    "F",
    [
        3 * np.array([[1.0, -1, 1, -1] * 3, [1.0, -1, -1, 1] * 3]).T,  # columns orthogonal to both class indicators
        1000 * np.eye(12, 40),  # fewer samples than features, labels fitted exactly
        np.abs(np.random.default_rng(0).normal(1, 1, size=(12, 400))),  # non-negative, pooled-like
    ],
)
def test_logme_stays_finite_on_degenerate_features(F):
    y = np.array([0, 0, 1, 1] * 3)
    score = logme_score(F, y)
    assert np.isfinite(score)
    # Evidence per sample of a 0/1 target cannot beat a perfect fit's by much; it is a log density.
    assert -5 < score < 5


def test_importing_selection_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, sktransfer.selection; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

"""Which extractors share a forward pass, and what the shared pass returns."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import make_tiny_backbone
from sktransfer.selection import leep_score, make_transferability_scorer, nce_score, rank_transfer
from sktransfer.selection._shared_pass import extract_shared, reads_source_head, shared_pass_key


def _tiny(**params):
    return PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, **params)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 6)
    images = rng.integers(0, 256, (18, 32, 32, 3), dtype=np.uint8)
    images[y == 2] //= 4  # a dark class
    return images, y


def test_pass_key_ignores_only_layer_and_pooling():
    base = shared_pass_key(_tiny())
    assert shared_pass_key(_tiny(layer="stage1", pooling="gem")) == base
    assert shared_pass_key(_tiny(batch_size=3)) != base
    assert shared_pass_key(_tiny(tta="flip")) != base
    assert shared_pass_key(PretrainedFeatureExtractor(model="resnet18", weights=None)) != base
    # Modules and layer lists are extracted on their own.
    assert shared_pass_key(PretrainedFeatureExtractor(model=make_tiny_backbone())) is None
    assert shared_pass_key(_tiny(layer=["stage1", "stage2"])) is None
    assert shared_pass_key(FunctionTransformer()) is None


def test_reads_source_head_only_for_the_own_embedding():
    assert reads_source_head(_tiny())
    assert not reads_source_head(_tiny(pooling="avg"))
    assert not reads_source_head(_tiny(layer="stage2"))


def test_one_pass_per_network_and_time_shared(data):
    images, y = data
    cands = {f"{s}/{p}": _tiny(layer=s, pooling=p) for s in ("stage1", "stage2") for p in ("avg", "max")}
    cands["alone"] = _tiny(layer=["stage1", "stage2"])
    table = rank_transfer(cands, images, y, scores=("logme",), return_timings=True)
    shared = table.loc[[k for k in cands if k != "alone"], "extract_s"]
    assert shared.nunique() == 1  # one pass, its time split equally
    assert table.loc["alone", "n_features"] == 16 + 32
    assert table.loc["stage1/avg", "n_features"] == 16


def test_source_probabilities_are_distributions(data):
    images, _ = data
    _, proba = extract_shared([_tiny(layer="stage1")], images, with_source=True)
    assert proba.shape == (len(images), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    _, none = extract_shared([_tiny(layer="stage1")], images, with_source=False)
    assert none is None


def test_rank_transfer_accepts_a_splitter(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    images, y = data
    train, test = np.arange(0, 18, 2), np.arange(1, 18, 2)
    table = rank_transfer([_tiny()], images, y, scores=("linear",), cv=[(train, test)])
    F = _tiny(engine="torch").fit_transform(images)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(F[train], y[train])
    assert table["linear"].iloc[0] == pytest.approx(probe.score(F[test], y[test]))


def test_nce_reads_only_the_arg_max():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 30)
    logits = rng.normal(size=(30, 5))
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sharp = np.exp(5 * logits) / np.exp(5 * logits).sum(1, keepdims=True)
    assert nce_score(soft, y) == pytest.approx(nce_score(sharp, y))
    # LEEP reads the probabilities, so sharpening changes it.
    assert leep_score(soft, y) != pytest.approx(leep_score(sharp, y))


def test_source_scores_ignore_the_order_of_source_classes():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    p = rng.dirichlet(np.ones(6), size=40)
    perm = rng.permutation(6)
    assert leep_score(p[:, perm], y) == pytest.approx(leep_score(p, y))
    assert nce_score(p[:, perm], y) == pytest.approx(nce_score(p, y))


def test_grid_search_over_layers_with_the_nce_scorer(data):
    images, y = data
    pipe = Pipeline([("embed", _tiny()), ("clf", "passthrough")])
    search = GridSearchCV(
        pipe, {"embed__pooling": [None]}, scoring=make_transferability_scorer("nce"), cv=StratifiedKFold(2)
    )
    search.fit(images, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.cv_results_["mean_test_score"][0] <= 0  # -H(Y|Z) is never positive

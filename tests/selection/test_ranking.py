"""rank_transfer and the transferability scorer on a tiny random network."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktransfer import PretrainedFeatureExtractor
from sktransfer.selection import leep_score, logme_score, make_transferability_scorer, rank_transfer
from sktransfer.selection._shared_pass import extract_shared, source_probabilities


def _tiny(**params):
    return PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, **params)


@pytest.fixture(scope="module")
def images_labels():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 12)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    images[y == 1, :, :16] = 255  # class 1: a bright left half
    return images, y


def _brightness(images):
    # Left-half brightness: a feature that tells the classes apart by construction.
    arr = np.asarray(images, dtype=float)
    return np.c_[arr[:, :, :16].mean(axis=(1, 2, 3)), arr[:, :, 16:].mean(axis=(1, 2, 3))]


def _noise(images):
    return np.random.default_rng(1).normal(size=(len(images), 2))


@pytest.mark.parametrize(
    "layer, pooling", [(None, None), ("stage1", "avg"), ("stage2", "gem"), ("stem", "avgmax"), (None, "max")]
)
def test_shared_pass_equals_separate_extraction(images_labels, layer, pooling):
    images, _ = images_labels
    others = [_tiny(layer="stage2", pooling="avg"), _tiny()]
    feats, proba = extract_shared([_tiny(layer=layer, pooling=pooling), *others], images, with_source=True)
    alone = _tiny(layer=layer, pooling=pooling, engine="torch").fit_transform(images)
    np.testing.assert_allclose(feats[0], alone, rtol=1e-4, atol=1e-5)
    embedder = _tiny(engine="torch").fit(images)
    expected = source_probabilities(embedder, embedder.transform(images))
    np.testing.assert_allclose(proba, expected, rtol=1e-4, atol=1e-6)
    assert len(feats) == 3


def test_rank_transfer_puts_the_informative_candidate_first(images_labels):
    images, y = images_labels
    candidates = {
        "noise": FunctionTransformer(_noise),
        "brightness": FunctionTransformer(_brightness),
        "tiny": _tiny(),
        "tiny_stage1": _tiny(layer="stage1"),
    }
    table = rank_transfer(candidates, images, y, random_state=0)
    assert list(table.index[:1]) == ["brightness"] and table.index[-1] == "noise"
    assert table.loc["brightness", "logme"] == pytest.approx(logme_score(_brightness(images), y))
    assert table.loc["brightness", "knn"] == 1.0 and table.loc["brightness", "linear"] == 1.0
    assert table.loc["noise", "linear"] < 0.8
    # Source scores only where the features are the network's own embedding.
    assert np.isfinite(table.loc["tiny", "leep"]) and np.isfinite(table.loc["tiny", "nce"])
    assert np.isnan(table.loc["tiny_stage1", "leep"]) and "layer=None" in table.loc["tiny_stage1", "note"]
    assert np.isnan(table.loc["brightness", "nce"])
    tiny = _tiny().fit(images)
    assert table.loc["tiny", "leep"] == pytest.approx(
        leep_score(source_probabilities(tiny, tiny.transform(images)), y), rel=1e-4
    )
    assert table.loc["tiny", "n_features"] == 64 and table.loc["tiny_stage1", "n_features"] == 16
    # Candidates are cloned: the ones passed in stay unfitted.
    assert not hasattr(candidates["tiny"], "backbone_")


def test_rank_transfer_sorts_by_the_chosen_score_and_names_a_list(images_labels):
    images, y = images_labels
    table = rank_transfer(
        [_tiny(layer="stage1"), _tiny(layer="stage2", pooling="gem"), _tiny(layer="stage1")],
        images,
        y,
        scores=("knn", "logme"),
        sort_by="logme",
        random_state=0,
    )
    assert set(table.index) == {
        "tiny_convnet/stage1/default",
        "tiny_convnet/stage2/gem",
        "tiny_convnet/stage1/default#2",
    }
    assert list(table["logme"]) == sorted(table["logme"], reverse=True)
    assert list(table.columns[:2]) == ["knn", "logme"]
    # Identical candidates get identical scores.
    assert table.loc["tiny_convnet/stage1/default", "logme"] == table.loc["tiny_convnet/stage1/default#2", "logme"]


def test_rank_transfer_cv_is_reproducible(images_labels):
    images, y = images_labels
    a = rank_transfer({"b": FunctionTransformer(_noise)}, images, y, scores=("linear", "knn"), random_state=3)
    b = rank_transfer({"b": FunctionTransformer(_noise)}, images, y, scores=("linear", "knn"), random_state=3)
    assert a.loc["b", "linear"] == b.loc["b", "linear"] and a.loc["b", "knn"] == b.loc["b", "knn"]


def test_scorer_in_grid_search_prefers_the_informative_features(images_labels):
    images, y = images_labels
    pipe = Pipeline([("embed", FunctionTransformer(_noise)), ("clf", "passthrough")])
    grid = {"embed": [FunctionTransformer(_noise), FunctionTransformer(_brightness)]}
    search = GridSearchCV(pipe, grid, scoring=make_transferability_scorer("logme"), cv=StratifiedKFold(2))
    search.fit(images, y)
    assert search.best_params_["embed"].func is _brightness


def test_scorer_reads_features_before_a_final_classifier(images_labels):
    images, y = images_labels
    pipe = Pipeline([("embed", FunctionTransformer(_brightness)), ("clf", LogisticRegression())]).fit(images, y)
    scorer = make_transferability_scorer("logme")
    assert scorer(pipe, images, y) == pytest.approx(logme_score(_brightness(images), y))


def test_leep_scorer_uses_the_source_head(images_labels):
    images, y = images_labels
    ext = _tiny().fit(images)
    expected = leep_score(source_probabilities(ext, ext.transform(images)), y)
    assert make_transferability_scorer("leep")(ext, images, y) == pytest.approx(expected)
    pipe = Pipeline([("embed", _tiny()), ("clf", "passthrough")]).fit(images, y)
    assert make_transferability_scorer("leep")(pipe, images, y) == pytest.approx(expected)


def test_rank_transfer_default_folds_are_five_when_the_classes_allow(images_labels):
    # cv=None (the default) keeps the 5 shuffled stratified folds of cv=5 where every class has 5 images.
    images, y = images_labels
    candidates = {"b": FunctionTransformer(_brightness), "n": FunctionTransformer(_noise)}
    auto = rank_transfer(candidates, images, y, scores=("knn", "linear"), random_state=3)
    five = rank_transfer(candidates, images, y, scores=("knn", "linear"), cv=5, random_state=3)
    assert auto[["knn", "linear"]].equals(five[["knn", "linear"]])
    assert (auto["note"] == "").all()


def test_rank_transfer_a_failing_shared_pass_fails_only_its_candidates(images_labels):
    images, y = images_labels
    candidates = {"bad": _tiny(layer="stage9"), "brightness": FunctionTransformer(_brightness)}
    with pytest.warns(UserWarning, match="1 of 2 candidate"):
        table = rank_transfer(candidates, images, y, scores=("logme",))
    assert list(table.index) == ["brightness", "bad"] and np.isnan(table.loc["bad", "logme"])
    assert "stage9" in table.loc["bad", "note"]


def test_rank_transfer_default_folds_follow_the_smallest_class(images_labels):
    # 3 images in the smallest class: cv=None gives the folds of cv=3, and says so.
    images, y = images_labels
    keep = np.r_[np.arange(12), 12, 13, 14]
    candidates = {"b": FunctionTransformer(_brightness)}
    with pytest.warns(UserWarning, match="3 folds, as the smallest class has 3 images"):
        auto = rank_transfer(candidates, images[keep], y[keep], scores=("knn", "linear"), random_state=3)
    three = rank_transfer(candidates, images[keep], y[keep], scores=("knn", "linear"), cv=3, random_state=3)
    assert auto[["knn", "linear"]].equals(three[["knn", "linear"]])
    assert auto.loc["b", "note"] == ("knn, linear: 3 folds, as the smallest class has 3 images")


def test_leave_one_out_knn_equals_one_fit_per_image():
    # The single neighbour search of cv=None's leave-one-out k-NN scores as sklearn's n fits would.
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    rng = np.random.default_rng(0)
    F = rng.normal(size=(60, 4))
    y = np.r_[np.repeat(np.arange(6), 9), 6, 7, 7, 7, 8, 8]  # class 6 has one image
    F[y % 2 == 1, 0] += 1.5
    with pytest.warns(UserWarning, match="knn: leave-one-out"):
        table = rank_transfer({"f": FunctionTransformer(lambda X: F)}, np.zeros(60), y, scores=("knn",))
    per_image = cross_val_score(make_pipeline(Normalizer(), KNeighborsClassifier(5)), F, y, cv=LeaveOneOut())
    assert table.loc["f", "knn"] == pytest.approx(per_image.mean())


def _brightness_doubled(images):
    return 2 * _brightness(images) + np.random.default_rng(2).normal(size=(len(images), 2))


def test_rank_transfer_returns_scores_and_gives_timings_on_request(images_labels):
    images, y = images_labels
    candidates = {"b": FunctionTransformer(_brightness), "n": FunctionTransformer(_noise)}
    plain = rank_transfer(candidates, images, y, scores=("logme", "knn"), random_state=0)
    assert list(plain.columns) == ["logme", "knn", "n_features", "note"]
    timed = rank_transfer(candidates, images, y, scores=("logme", "knn"), random_state=0, return_timings=True)
    assert list(timed.columns) == ["logme", "knn", "n_features", "extract_s", "logme_s", "knn_s", "note"]
    assert (timed[["extract_s", "logme_s", "knn_s"]] >= 0).all().all()


def test_rank_transfer_default_scores_leave_out_those_that_cannot_rank_the_candidates(images_labels):
    # leep/nce are NaN for every candidate (none reads the network's classifier); knn and linear
    # are 1.0 for both (each tells the classes apart perfectly): only logme ranks them.
    images, y = images_labels
    candidates = {"b": FunctionTransformer(_brightness), "b2": FunctionTransformer(_brightness_doubled)}
    with pytest.warns(UserWarning, match=r"leep \(NaN for every candidate\); nce .*knn \(equal to 1 for every"):
        table = rank_transfer(candidates, images, y, random_state=0)
    assert list(table.columns) == ["logme", "n_features", "note"]
    explicit = rank_transfer(candidates, images, y, scores=("logme", "leep", "knn"), random_state=0)
    assert list(explicit.columns[:3]) == ["logme", "leep", "knn"] and explicit["leep"].isna().all()


def test_rank_transfer_verbose_reports_each_step_as_plain_lines(images_labels, capsys):
    images, y = images_labels
    candidates = {"b": FunctionTransformer(_brightness), "n": FunctionTransformer(_noise)}
    rank_transfer(candidates, images, y, scores=("logme",), verbose=1)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert [line.split(" in ")[0] for line in lines] == [
        "rank_transfer [1/4] extracted b",
        "rank_transfer [2/4] extracted n",
        "rank_transfer [3/4] scored b",
        "rank_transfer [4/4] scored n",
        "rank_transfer: done",
    ]
    assert "\r" not in err and "\x1b" not in err  # not a terminal: no control characters
    rank_transfer(candidates, images, y, scores=("logme",))
    assert capsys.readouterr().err == ""

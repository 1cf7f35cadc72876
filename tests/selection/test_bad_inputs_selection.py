"""Bad-input catalogue of the transferability tools: one row per fault.

Each row is (id, a callable that commits the fault, the expectation): either
``raises(ExceptionType, message fragment)`` or ``policy(check)``, where
``check`` asserts the documented behaviour on the callable's result.
"""

import tempfile
from collections import namedtuple

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from sktransfer import PretrainedFeatureExtractor
from sktransfer.selection import leep_score, logme_score, make_transferability_scorer, nce_score, rank_transfer

Raises = namedtuple("Raises", "type fragment")
Policy = namedtuple("Policy", "check description")

RNG = np.random.default_rng(0)
F = RNG.normal(size=(20, 3))
Y = np.repeat([0, 1], 10)
P = np.full((20, 4), 0.25)
IMAGES = RNG.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)


def _tiny(**params):
    return PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0, **params)


def _with_nan(a):
    a = np.array(a, dtype=float)
    a[2, 1] = np.nan
    return a


def _means(images):
    return np.asarray(images, dtype=float).mean(axis=(1, 2))


def _nan_features(images):
    out = _means(images)
    out[0, 0] = np.nan
    return out


def _leep_for_layer():
    return rank_transfer({"stage1": _tiny(layer="stage1")}, IMAGES, Y, scores=("leep", "logme"))


def _store_after_a_shared_pass():
    """A plain extractor's features from a store that rank_transfer's candidates shared, and fresh ones."""
    with tempfile.TemporaryDirectory() as folder:
        on_store = {"cache": folder, "engine": "torch"}
        candidates = {"s1": _tiny(layer="stage1", **on_store), "s2": _tiny(layer="stage2", pooling="max", **on_store)}
        rank_transfer(candidates, IMAGES, Y, scores=("logme",))
        return _tiny(**on_store).fit(IMAGES).transform(IMAGES), _tiny(engine="torch").fit(IMAGES).transform(IMAGES)


def _same_features(pair):
    stored, fresh = pair
    np.testing.assert_allclose(stored, fresh, rtol=1e-5, atol=1e-6)


# 20 images over 10 classes (2 each), and the same with one class of a single image.
FEW_Y = np.repeat(np.arange(10), 2)
SINGLE_Y = np.r_[np.repeat(np.arange(9), 2), 9]  # classes 0..8 twice, class 9 once


def _tiny_torch(**params):
    return _tiny(engine="torch", **params)


def _rank_few_per_class(y):
    with pytest.warns(UserWarning, match="cv=None"):
        return rank_transfer([_tiny_torch()], IMAGES[: len(y)], y, random_state=0)


def _check_reduced_folds(table):
    row = table.iloc[0]
    assert all(np.isfinite(row[s]) for s in ("logme", "leep", "nce", "knn", "linear"))
    assert "knn, linear: 2 folds, as the smallest class has 2 images" in row["note"]


def _check_single_image_class(table):
    row = table.iloc[0]
    assert all(np.isfinite(row[s]) for s in ("logme", "leep", "nce", "knn")) and np.isnan(row["linear"])
    assert "knn: leave-one-out" in row["note"] and "linear: skipped: a class has a single image" in row["note"]


def _broken(images):
    raise RuntimeError("the disk went away")


def _rank_with_a_failing_candidate():
    candidates = {"broken": FunctionTransformer(_broken), "tiny": _tiny_torch()}
    with pytest.warns(UserWarning, match="'broken': RuntimeError: the disk went away"):
        return rank_transfer(candidates, IMAGES, Y, scores=("logme", "knn"), random_state=0)


def _check_failure_recorded(table):
    assert list(table.index) == ["tiny", "broken"]
    assert np.isfinite(table.loc["tiny", "logme"]) and np.isnan(table.loc["broken", "logme"])
    assert table.loc["broken", "note"] == "extraction failed: RuntimeError: the disk went away"


def _check_nan_with_note(table):
    assert np.isnan(table.loc["stage1", "leep"]) and np.isfinite(table.loc["stage1", "logme"])
    assert "layer=None, pooling=None" in table.loc["stage1", "note"]


ROWS = [
    ("logme-y-2d", lambda: logme_score(F, Y[:, None]), Raises(ValueError, "1-D")),
    ("logme-one-class", lambda: logme_score(F, np.zeros(20)), Raises(ValueError, "single class")),
    ("logme-length-mismatch", lambda: logme_score(F, Y[:15]), Raises(ValueError, "inconsistent numbers of samples")),
    ("logme-nan-features", lambda: logme_score(_with_nan(F), Y), Raises(ValueError, "NaN")),
    ("logme-1d-features", lambda: logme_score(F[:, 0], Y), Raises(ValueError, "2D array")),
    ("leep-rows-not-summing-to-1", lambda: leep_score(P * 2, Y), Raises(ValueError, "sum to 1")),
    (
        "leep-negative",
        lambda: leep_score(np.tile([1.5, -0.5, 0.0, 0.0], (20, 1)), Y),
        Raises(ValueError, "non-negative"),
    ),
    ("leep-one-class", lambda: leep_score(P, np.ones(20)), Raises(ValueError, "single class")),
    ("nce-one-class", lambda: nce_score(P, np.ones(20)), Raises(ValueError, "single class")),
    ("nce-nan", lambda: nce_score(_with_nan(P), Y), Raises(ValueError, "NaN")),
    ("rank-empty-dict", lambda: rank_transfer({}, IMAGES, Y), Raises(ValueError, "candidates is empty")),
    (
        "rank-not-a-transformer",
        lambda: rank_transfer({"lr": LogisticRegression()}, IMAGES, Y),
        Raises(TypeError, "not a transformer"),
    ),
    (
        "rank-candidates-string",
        lambda: rank_transfer("efficientnet_lite0", IMAGES, Y),
        Raises(TypeError, "dict of name -> extractor"),
    ),
    (
        "rank-unknown-score",
        lambda: rank_transfer([_tiny()], IMAGES, Y, scores=("accuracy",)),
        Raises(ValueError, "subset of"),
    ),
    ("rank-no-scores", lambda: rank_transfer([_tiny()], IMAGES, Y, scores=()), Raises(ValueError, "non-empty")),
    (
        "rank-sort-by-not-computed",
        lambda: rank_transfer([_tiny()], IMAGES, Y, scores=("logme",), sort_by="knn"),
        Raises(ValueError, "sort_by='knn'"),
    ),
    (
        "rank-cv-above-smallest-class",
        lambda: rank_transfer([_tiny()], IMAGES, np.r_[np.zeros(17), np.ones(3)], cv=5),
        Raises(ValueError, "smallest class has 3"),
    ),
    ("rank-cv-1", lambda: rank_transfer([_tiny()], IMAGES, Y, cv=1), Raises(ValueError, "cv=1")),
    # Found by the red team: 400 images over 120 classes raised "cv=5 needs at
    # least cv (>= 2) samples of every class" and scored nothing, not even
    # LogME, LEEP and NCE, which need no folds.
    (
        "rank-two-images-per-class",
        lambda: _rank_few_per_class(FEW_Y),
        Policy(_check_reduced_folds, "cv=None: as many folds as the smallest class allows, said in note"),
    ),
    (
        "rank-a-class-of-one-image",
        lambda: _rank_few_per_class(SINGLE_Y),
        Policy(_check_single_image_class, "cv=None: k-NN leave-one-out, linear skipped, said in note"),
    ),
    # Found by the red team: None among the labels raised a TypeError from sorting.
    (
        "rank-none-label",
        lambda: rank_transfer([_tiny()], IMAGES, np.r_[Y[:3], None, Y[4:]], scores=("logme",)),
        Raises(ValueError, "missing label(s) (None or NaN) at position(s) 3"),
    ),
    (
        "rank-nan-label",
        lambda: rank_transfer([_tiny()], IMAGES, np.r_[Y[:5], np.nan, Y[6:]], scores=("logme",)),
        Raises(ValueError, "at position(s) 5"),
    ),
    (
        "rank-mixed-label-types",
        lambda: rank_transfer([_tiny()], IMAGES, np.r_[Y[:10].astype(object), ["b"] * 10], scores=("logme",)),
        Raises(ValueError, "mixes labels of types ['int', 'str']"),
    ),
    # Found by the red team: a candidate whose extraction raised gave the raw
    # error without its name, and every other candidate's work was lost.
    (
        "rank-failing-candidate-keeps-the-others",
        _rank_with_a_failing_candidate,
        Policy(_check_failure_recorded, "the failed candidate's row: NaN scores, its error in note, one warning"),
    ),
    (
        "rank-every-candidate-fails",
        lambda: rank_transfer({"broken": FunctionTransformer(_broken)}, IMAGES, Y, scores=("logme",)),
        Raises(RuntimeError, "every candidate failed to extract features: 'broken': RuntimeError: the disk went"),
    ),
    ("rank-one-class", lambda: rank_transfer([_tiny()], IMAGES, np.zeros(20)), Raises(ValueError, "single class")),
    ("rank-y-2d", lambda: rank_transfer([_tiny()], IMAGES, Y[:, None]), Raises(ValueError, "1-D")),
    (
        "rank-length-mismatch",
        lambda: rank_transfer({"m": FunctionTransformer(_means)}, IMAGES, np.r_[Y, Y][:30], scores=("logme",)),
        Raises(ValueError, "different lengths (20 and 30)"),
    ),
    (
        "rank-unknown-layer-group",
        lambda: rank_transfer([_tiny(layer="stage9")], IMAGES, Y, scores=("logme",)),
        Raises(ValueError, "stage9"),
    ),
    (
        "rank-non-finite-features",
        lambda: rank_transfer({"nan": FunctionTransformer(_nan_features)}, IMAGES, Y, scores=("logme",)),
        Raises(ValueError, "non-finite features"),
    ),
    (
        "rank-leep-for-a-layer-is-nan",
        _leep_for_layer,
        Policy(_check_nan_with_note, "leep/nce are NaN with a note for features that do not feed the source head"),
    ),
    ("scorer-unknown", lambda: make_transferability_scorer("accuracy"), Raises(ValueError, "score must be one of")),
    (
        "scorer-leep-on-a-layer",
        lambda: make_transferability_scorer("leep")(_tiny(layer="stage1").fit(IMAGES), IMAGES, Y),
        Raises(ValueError, "layer=None and pooling=None"),
    ),
    (
        "scorer-leep-without-extractor",
        lambda: make_transferability_scorer("nce")(FunctionTransformer(_means).fit(IMAGES), IMAGES, Y),
        Raises(ValueError, "PretrainedFeatureExtractor"),
    ),
    (
        "scorer-on-a-classifier",
        lambda: make_transferability_scorer("logme")(LogisticRegression().fit(F, Y), F, Y),
        Raises(TypeError, "needs a transformer"),
    ),
    # Found in the runtime redesign: the shared pass ran its combined readout
    # through a clone of the first candidate, cache included, so the store
    # kept the concatenated features under the layer=None key, and a plain
    # extractor on that store then failed with a shape mismatch (or, at an
    # equal width, got another readout's features).
    (
        "shared-pass-with-a-store",
        _store_after_a_shared_pass,
        Policy(_same_features, "the shared pass leaves the store alone"),
    ),
]


@pytest.mark.parametrize("fault, expectation", [(r[1], r[2]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(fault, expectation):
    if isinstance(expectation, Raises):
        with pytest.raises(expectation.type) as info:
            fault()
        assert expectation.fragment in str(info.value)
    else:
        expectation.check(fault())


def test_catalogue_ids_are_unique():
    ids = [r[0] for r in ROWS]
    assert len(ids) == len(set(ids))

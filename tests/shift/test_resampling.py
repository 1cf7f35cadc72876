"""ResampledClassifier: imbalanced-learn sampling semantics and prior correction."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import ResampledClassifier
from sktransfer.shift._resampling import resampled_indices, target_class_counts


def imbalanced_data(seed=0, n_major=1000, n_minor=100, shift=1.5):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_major, dtype=int), np.ones(n_minor, dtype=int)]
    X = rng.normal(size=(len(y), 2)) + shift * y[:, None]
    return X, y


@pytest.mark.parametrize(
    "kind, strategy, expected",
    [
        ("under", "auto", {0: 10, 1: 10, 2: 10}),
        ("under", "majority", {0: 10, 1: 30, 2: 10}),
        ("under", "not majority", {0: 50, 1: 10, 2: 10}),
        ("under", {0: 20}, {0: 20, 1: 30, 2: 10}),
        ("over", "auto", {0: 50, 1: 50, 2: 50}),
        ("over", "minority", {0: 50, 1: 30, 2: 50}),
        ("over", {2: 40}, {0: 50, 1: 30, 2: 40}),
        ("over", lambda y: {1: 45}, {0: 50, 1: 45, 2: 10}),
    ],
)
def test_target_counts_follow_imbalanced_learn(kind, strategy, expected):
    y = np.repeat([0, 1, 2], [50, 30, 10])
    assert target_class_counts(y, strategy, kind) == expected


def test_float_strategy_is_minority_over_majority_ratio():
    y = np.repeat([0, 1], [100, 10])
    # ratio 0.5 => majority becomes 10 / 0.5 = 20 when under-sampling,
    # minority becomes 100 * 0.5 = 50 when over-sampling.
    assert target_class_counts(y, 0.5, "under") == {0: 20, 1: 10}
    assert target_class_counts(y, 0.5, "over") == {0: 100, 1: 50}


@pytest.mark.parametrize(
    "kind, strategy, message",
    [
        ("under", "minority", "makes no sense for under-sampling"),
        ("over", "majority", "makes no sense for over-sampling"),
        ("under", {1: 40}, "cannot raise class 1"),
        ("over", {0: 5}, "cannot lower class 0"),
        ("under", {7: 3}, "not in y"),
    ],
)
def test_invalid_strategies_say_what_is_wrong(kind, strategy, message):
    y = np.repeat([0, 1], [50, 30])
    with pytest.raises(ValueError, match=message):
        target_class_counts(y, strategy, kind)


def test_float_strategy_needs_binary_target():
    with pytest.raises(ValueError, match="only defined for binary"):
        target_class_counts(np.repeat([0, 1, 2], 5), 0.5, "under")


def test_indices_under_sample_without_replacement_and_over_keep_all_rows():
    y = np.repeat([0, 1], [40, 8])
    under = resampled_indices(y, kind="under", random_state=0)
    assert np.bincount(y[under]).tolist() == [8, 8]
    assert len(np.unique(under)) == len(under)
    over = resampled_indices(y, kind="over", random_state=0)
    assert np.bincount(y[over]).tolist() == [40, 40]
    assert set(range(len(y))) <= set(over.tolist())


@pytest.mark.parametrize("sampler", ["under", "over"])
def test_resampling_raises_balanced_accuracy_on_10_to_1_data(sampler):
    X, y = imbalanced_data(seed=0)
    X_test, y_test = imbalanced_data(seed=1)
    plain = LogisticRegression().fit(X, y)
    resampled = ResampledClassifier(sampler=sampler, random_state=0).fit(X, y)
    plain_score = balanced_accuracy_score(y_test, plain.predict(X_test))
    resampled_score = balanced_accuracy_score(y_test, resampled.predict(X_test))
    # With 1.5-sd class separation the balanced rule gains ~0.1; require 0.05.
    assert resampled_score > plain_score + 0.05


def test_prior_correction_recovers_the_original_posteriors():
    X, y = imbalanced_data(seed=0, n_major=4000, n_minor=400)
    X_test, _ = imbalanced_data(seed=1)
    reference = LogisticRegression().fit(X, y).predict_proba(X_test)
    corrected = ResampledClassifier(random_state=0).fit(X, y).predict_proba(X_test)
    uncorrected = ResampledClassifier(prior_correction=False, random_state=0).fit(X, y)
    uncorrected = uncorrected.predict_proba(X_test)
    # Logistic regression is well specified here, so undoing the prior shift
    # should land on the full-data posteriors up to sampling noise.
    assert np.mean(np.abs(corrected - reference)) < 0.02
    assert np.mean(np.abs(uncorrected - reference)) > 0.1
    np.testing.assert_allclose(corrected.sum(axis=1), 1.0)


def test_predict_keeps_the_balanced_decision_rule():
    X, y = imbalanced_data(seed=0)
    clf = ResampledClassifier(random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.predict(X), clf.estimator_.predict(X))
    clf_uncorrected = ResampledClassifier(prior_correction=False, random_state=0).fit(X, y)
    np.testing.assert_array_equal(
        clf_uncorrected.predict(X), np.argmax(clf_uncorrected.predict_proba(X), axis=1)
    )


class KeepFirstRowsSampler:
    """Duck-typed sampler: keeps the first `n_per_class` rows of each class."""

    def __init__(self, n_per_class=5, random_state=None):
        self.n_per_class = n_per_class
        self.random_state = random_state

    def get_params(self, deep=True):
        return {"n_per_class": self.n_per_class, "random_state": self.random_state}

    def set_params(self, **params):
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit_resample(self, X, y):
        rows = np.concatenate([np.flatnonzero(y == c)[: self.n_per_class] for c in np.unique(y)])
        self.seen_random_state_ = self.random_state
        return X[rows], y[rows]


def test_any_object_with_fit_resample_is_used():
    X, y = imbalanced_data(seed=0)
    sampler = KeepFirstRowsSampler(n_per_class=7)
    clf = ResampledClassifier(sampler=sampler, random_state=3).fit(X, y)
    assert clf.resampled_class_counts_.tolist() == [7, 7]
    assert clf.class_counts_.tolist() == [1000, 100]
    assert not hasattr(sampler, "seen_random_state_"), "the user's sampler must be cloned"


def test_sampling_strategy_is_refused_with_a_custom_sampler():
    X, y = imbalanced_data(seed=0)
    clf = ResampledClassifier(sampler=KeepFirstRowsSampler(), sampling_strategy="majority")
    with pytest.raises(ValueError, match="set the sampling strategy on your sampler"):
        clf.fit(X, y)


def test_imbalanced_learn_sampler_matches_builtin_counts():
    imblearn = pytest.importorskip("imblearn.under_sampling")
    X, y = imbalanced_data(seed=0)
    theirs = ResampledClassifier(sampler=imblearn.RandomUnderSampler(), random_state=0).fit(X, y)
    ours = ResampledClassifier(sampler="under", random_state=0).fit(X, y)
    np.testing.assert_array_equal(theirs.resampled_class_counts_, ours.resampled_class_counts_)


def test_works_in_pipeline_and_grid_search_and_pickles():
    X, y = imbalanced_data(seed=0)
    pipe = make_pipeline(StandardScaler(), ResampledClassifier(random_state=0))
    search = GridSearchCV(
        pipe,
        {"resampledclassifier__sampler": ["under", "over"]},
        scoring="balanced_accuracy",
        cv=3,
    ).fit(X, y)
    assert search.best_params_["resampledclassifier__sampler"] in {"under", "over"}
    fitted = search.best_estimator_
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X), fitted.predict_proba(X))
    assert clone(pipe).get_params()["resampledclassifier__random_state"] == 0

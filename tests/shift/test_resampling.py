"""ResampledClassifier: imbalanced-learn sampling semantics and prior correction."""

import pickle

import numpy as np
import pytest
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import ResampledClassifier
from sktransfer.shift._resampling import resampled_indices, target_class_counts


def imbalanced_data(seed=0, n_major=1000, n_minor=100, shift=1.5):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_major, dtype=int), np.ones(n_minor, dtype=int)]
    X = rng.normal(size=(len(y), 2)) + shift * y[:, None]
    return X, y


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
    np.testing.assert_array_equal(clf_uncorrected.predict(X), np.argmax(clf_uncorrected.predict_proba(X), axis=1))


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


IMBLEARN_SAMPLERS = {"under": RandomUnderSampler, "over": RandomOverSampler}


def _imblearn_counts(kind, strategy, y):
    sampler = IMBLEARN_SAMPLERS[kind](sampling_strategy=strategy, random_state=0)
    _, y_resampled = sampler.fit_resample(np.zeros((len(y), 1)), y)
    labels, counts = np.unique(y_resampled, return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist()))


@pytest.mark.parametrize(
    "kind, strategy",
    [
        ("under", "auto"),
        ("under", "majority"),
        ("under", "not minority"),
        ("under", "not majority"),
        ("under", "all"),
        ("under", {0: 20}),
        ("under", lambda y: {0: 20, 1: 15}),
        ("over", "auto"),
        ("over", "minority"),
        ("over", "not minority"),
        ("over", "not majority"),
        ("over", "all"),
        ("over", {2: 40}),
        ("over", lambda y: {1: 45}),
    ],
)
def test_class_counts_equal_imbalanced_learn_on_three_classes(kind, strategy):
    y = np.repeat([0, 1, 2], [50, 30, 10])
    expected = _imblearn_counts(kind, strategy, y)
    assert target_class_counts(y, strategy, kind) == expected
    # And through the estimator, as the counts its inner model was fitted on.
    X = np.random.default_rng(0).normal(size=(len(y), 2))
    clf = ResampledClassifier(sampler=kind, sampling_strategy=strategy, random_state=0).fit(X, y)
    assert clf.resampled_class_counts_.tolist() == [expected[c] for c in clf.classes_]


@pytest.mark.parametrize("kind", ["under", "over"])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.3, 1.0])
def test_float_counts_equal_imbalanced_learn(kind, ratio):
    y = np.repeat([0, 1], [100, 10])
    assert target_class_counts(y, ratio, kind) == _imblearn_counts(kind, ratio, y)


@pytest.mark.parametrize("kind, strategy", [("under", "minority"), ("over", "majority")])
def test_strategies_imbalanced_learn_refuses_are_refused(kind, strategy):
    y = np.repeat([0, 1], [50, 30])
    with pytest.raises(ValueError):
        _imblearn_counts(kind, strategy, y)
    with pytest.raises(ValueError, match="makes no sense"):
        target_class_counts(y, strategy, kind)


@pytest.mark.parametrize("kind", ["under", "over"])
def test_an_imbalanced_learn_sampler_can_be_plugged_in(kind):
    X, y = imbalanced_data(seed=0)
    sampler = IMBLEARN_SAMPLERS[kind](sampling_strategy=0.5)
    theirs = ResampledClassifier(sampler=sampler, random_state=0).fit(X, y)
    ours = ResampledClassifier(sampler=kind, sampling_strategy=0.5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(theirs.resampled_class_counts_, ours.resampled_class_counts_)
    assert theirs.resampled_class_counts_.tolist() == ([200, 100] if kind == "under" else [1000, 500])
    # random_state reached the cloned sampler: same seed, same resample, same model.
    again = ResampledClassifier(sampler=sampler, random_state=0).fit(X, y)
    np.testing.assert_array_equal(again.estimator_.coef_, theirs.estimator_.coef_)
    assert sampler.random_state is None, "the user's sampler must be cloned, not modified"


def test_decision_function_is_the_balanced_rule_of_predict():
    X, y = imbalanced_data(seed=0)
    clf = ResampledClassifier(random_state=0).fit(X, y)
    scores = clf.decision_function(X)
    np.testing.assert_allclose(scores, clf.estimator_.decision_function(X))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(scores > 0).astype(int)])


def test_works_in_pipeline_and_grid_search_and_pickles():
    X, y = imbalanced_data(seed=0)
    pipe = make_pipeline(StandardScaler(), ResampledClassifier(random_state=0))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        pipe,
        {"resampledclassifier__sampler": ["under", "over"]},
        scoring="balanced_accuracy",
        cv=cv,
    ).fit(X, y)
    # Each candidate is cloned, resampled with the same seed and scored like a
    # plain cross-validation of that configuration.
    for sampler, score in zip(
        search.cv_results_["param_resampledclassifier__sampler"],
        search.cv_results_["mean_test_score"],
    ):
        manual = cross_val_score(
            clone(pipe).set_params(resampledclassifier__sampler=sampler),
            X,
            y,
            scoring="balanced_accuracy",
            cv=cv,
        )
        assert score == pytest.approx(manual.mean())
    fitted = search.best_estimator_
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X), fitted.predict_proba(X))
    assert clone(pipe).get_params()["resampledclassifier__random_state"] == 0

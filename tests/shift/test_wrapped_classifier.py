"""WrappedClassifier: the shared validation and delegation of the three meta-classifiers."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from sktransfer import ImportanceWeightedClassifier, LabelShiftAdapter, ResampledClassifier
from sktransfer.shift._base import WrappedClassifier

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 3))
y = (X[:, 0] + 0.3 * rng.normal(size=120) > 0.5).astype(int)
X_TARGET = rng.normal(size=(80, 3)) + 0.5


def fitted(meta):
    if isinstance(meta, ImportanceWeightedClassifier):
        return meta.fit(X, y, X_target=X_TARGET)
    return meta.fit(X, y)


@pytest.mark.parametrize("meta_class", [ResampledClassifier, ImportanceWeightedClassifier, LabelShiftAdapter])
def test_all_three_share_the_base(meta_class):
    assert issubclass(meta_class, WrappedClassifier)
    # Delegation lives once, in the base: no subclass redefines decision_function.
    assert "decision_function" not in vars(meta_class)


@pytest.mark.parametrize("meta_class", [ResampledClassifier, ImportanceWeightedClassifier])
def test_methods_follow_the_inner_estimator_before_and_after_fit(meta_class):
    with_svc = meta_class(LinearSVC())
    assert not hasattr(with_svc, "predict_proba") and hasattr(with_svc, "decision_function")
    fitted(with_svc)
    assert not hasattr(with_svc, "predict_proba")
    np.testing.assert_allclose(with_svc.decision_function(X), with_svc.estimator_.decision_function(X))
    np.testing.assert_array_equal(with_svc.predict(X), with_svc.estimator_.predict(X))


def test_importance_weighted_probabilities_are_the_inner_ones():
    clf = fitted(ImportanceWeightedClassifier(LogisticRegression()))
    np.testing.assert_array_equal(clf.predict_proba(X), clf.estimator_.predict_proba(X))


@pytest.mark.parametrize("meta_class", [ResampledClassifier, ImportanceWeightedClassifier, LabelShiftAdapter])
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_prediction_input_is_validated_by_the_base(meta_class, method):
    with pytest.raises(NotFittedError):
        getattr(meta_class(), method)(X)
    meta = fitted(meta_class())
    with pytest.raises(ValueError, match="3 features"):
        getattr(meta, method)(X[:, :2])
    assert not meta.__sklearn_tags__().input_tags.sparse


def test_default_inner_estimator_is_logistic_regression():
    clf = fitted(ResampledClassifier(random_state=0))
    assert isinstance(clf.estimator_, LogisticRegression) and clf.estimator_.max_iter == 1000
    assert ResampledClassifier().estimator is None  # the parameter itself is left alone

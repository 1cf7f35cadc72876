"""Importance weights, importance-weighted fitting and importance-weighted CV."""

import pickle

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from sktransfer import (
    DomainClassifierWeighter,
    ImportanceWeightedClassifier,
    make_importance_weighted_scorer,
)


def gaussian_domains(n_source, n_target, seed=0):
    """Source N(0, 1), target N(1, 1): true ratio p_t/p_s = exp(x - 1/2)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (n_source, 1)), rng.normal(1.0, 1.0, (n_target, 1))


def parabola_domains(seed=0, n=800):
    """Label boundary x2 = x1²/2; a linear model fits it only locally."""
    rng = np.random.default_rng(seed)

    def draw(mean):
        X = np.c_[rng.normal(mean, 0.7, n), rng.normal(1.0, 2.0, n)]
        return X, (X[:, 1] > 0.5 * X[:, 0] ** 2).astype(int)

    return draw(0.0), draw(2.0)


@pytest.mark.parametrize("n_source, n_target", [(4000, 4000), (6000, 1500)])
def test_weights_match_the_known_gaussian_density_ratio(n_source, n_target):
    X_source, X_target = gaussian_domains(n_source, n_target)
    weighter = DomainClassifierWeighter(normalize=False, random_state=0).fit(X_source, X_target)
    grid = np.linspace(-1.0, 2.0, 7)[:, None]
    weights = weighter.compute_weights(grid)
    true_ratio = np.exp(grid[:, 0] - 0.5)
    # Direction: rows that look like the target (large x) weigh more.
    assert np.all(np.diff(weights) > 0)
    # Size: within 20% of the true ratio over ±1.5 sd of the data, also with
    # unequal sample sizes (which the n_s/n_t factor must cancel).
    np.testing.assert_allclose(weights, true_ratio, rtol=0.2)


def test_normalize_and_clip():
    X_source, X_target = gaussian_domains(1000, 1000)
    weighter = DomainClassifierWeighter(random_state=0).fit(X_source, X_target)
    assert np.mean(weighter.compute_weights(X_source)) == pytest.approx(1.0, abs=1e-9)
    unnormalised = clone(weighter).set_params(normalize=False).fit(X_source, X_target)
    np.testing.assert_allclose(
        weighter.compute_weights(X_source),
        unnormalised.compute_weights(X_source) / unnormalised.source_mean_weight_,
    )
    clipped = clone(weighter).set_params(clip=2.0).fit(X_source, X_target)
    # Clipping applies after normalisation: min(normalised weight, 2).
    np.testing.assert_allclose(clipped.compute_weights(X_source), np.minimum(weighter.compute_weights(X_source), 2.0))
    assert np.sum(weighter.compute_weights(X_source) > 2.0) > 0  # the clip did bite


def test_domain_auc_measures_how_different_the_domains_are():
    X_source, X_target = gaussian_domains(2000, 2000)
    shifted = DomainClassifierWeighter(random_state=0).fit(X_source, X_target)
    other_source, _ = gaussian_domains(2000, 1, seed=1)  # independent draw, same law
    same = DomainClassifierWeighter(random_state=0).fit(X_source, other_source)
    # True AUC of N(0,1) vs N(1,1) is Phi(1/sqrt(2)) = 0.760.
    assert shifted.domain_auc_ == pytest.approx(0.760, abs=0.02)
    assert same.domain_auc_ < 0.55


def test_feature_mismatch_error_names_the_backbone():
    with pytest.raises(ValueError, match="same backbone"):
        DomainClassifierWeighter().fit(np.zeros((10, 3)), np.ones((10, 4)))


def test_weighter_api_checks_and_pickle():
    for check in (
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_parameters_default_constructible,
    ):
        check("DomainClassifierWeighter", DomainClassifierWeighter())
    X_source, X_target = gaussian_domains(200, 100)
    weighter = DomainClassifierWeighter(random_state=0).fit(X_source, X_target)
    restored = pickle.loads(pickle.dumps(weighter))
    np.testing.assert_allclose(restored.compute_weights(X_source), weighter.compute_weights(X_source))


def test_importance_weighting_improves_target_accuracy():
    (X_source, y_source), (X_target, y_target) = parabola_domains(seed=0)
    plain = LogisticRegression().fit(X_source, y_source).score(X_target, y_target)
    weighted = ImportanceWeightedClassifier(LogisticRegression(), DomainClassifierWeighter(random_state=0)).fit(
        X_source, y_source, X_target=X_target
    )
    # Unweighted ~0.70, weighted ~0.96 on this draw; require a 0.15 gain.
    assert weighted.score(X_target, y_target) > plain + 0.15
    assert weighted.weighter_ is not None


def test_prefit_frozen_weighter_survives_grid_search_with_iwcv():
    (X_source, y_source), (X_target, y_target) = parabola_domains(seed=1)
    weighter = DomainClassifierWeighter(random_state=0).fit(X_source, X_target)
    search = GridSearchCV(
        ImportanceWeightedClassifier(LogisticRegression(), FrozenEstimator(weighter)),
        {"flattening": [0.0, 1.0]},
        scoring=make_importance_weighted_scorer("accuracy", weighter=weighter),
        cv=KFold(4, shuffle=True, random_state=0),
    ).fit(X_source, y_source)
    # Importance-weighted CV must see that full weighting is better on the target.
    assert search.best_params_ == {"flattening": 1.0}
    assert search.best_estimator_.score(X_target, y_target) > 0.9


def test_iwcv_scorer_with_metadata_routing_matches_manual_weighting():
    (X_source, y_source), (X_target, y_target) = parabola_domains(seed=2)
    weights = DomainClassifierWeighter(random_state=0).fit(X_source, X_target).compute_weights(X_source)
    folds = list(KFold(4, shuffle=True, random_state=0).split(X_source))
    scorer = make_importance_weighted_scorer("accuracy")
    with sklearn.config_context(enable_metadata_routing=True):
        routed = cross_validate(
            LogisticRegression(),
            X_source,
            y_source,
            cv=folds,
            scoring=scorer,
            params={"importance_weight": weights},
        )["test_score"]
    assert sklearn.get_config()["enable_metadata_routing"] is False
    for (train, test), score in zip(folds, routed):
        clf = LogisticRegression().fit(X_source[train], y_source[train])
        correct = clf.predict(X_source[test]) == y_source[test]
        assert score == pytest.approx(np.average(correct, weights=weights[test]), abs=1e-12)
    # IWCV estimates the target accuracy better than plain CV does (Sugiyama 2007).
    plain = cross_val_score(LogisticRegression(), X_source, y_source, cv=folds).mean()
    target = LogisticRegression().fit(X_source, y_source).score(X_target, y_target)
    assert abs(routed.mean() - target) < abs(plain - target)


def test_routing_also_works_through_grid_search():
    (X_source, y_source), (X_target, _) = parabola_domains(seed=3)
    weights = DomainClassifierWeighter(random_state=0).fit(X_source, X_target).compute_weights(X_source)
    folds = list(KFold(3, shuffle=True, random_state=0).split(X_source))
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            LogisticRegression(),
            {"C": [0.01, 1.0]},
            cv=folds,
            scoring=make_importance_weighted_scorer("accuracy"),
        ).fit(X_source, y_source, importance_weight=weights)
    # Each fold's score is the accuracy weighted by that fold's slice of the weights.
    for C, score in zip([0.01, 1.0], search.cv_results_["mean_test_score"]):
        manual = []
        for train, test in folds:
            clf = LogisticRegression(C=C).fit(X_source[train], y_source[train])
            correct = clf.predict(X_source[test]) == y_source[test]
            manual.append(np.average(correct, weights=weights[test]))
        assert score == pytest.approx(np.mean(manual), abs=1e-12)


def test_scorer_without_weights_explains_how_to_pass_them():
    X, y = np.arange(8.0)[:, None], np.repeat([0, 1], 4)
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="enable metadata routing"):
        make_importance_weighted_scorer("accuracy")(clf, X, y)


def test_no_target_warns_and_fits_unweighted():
    (X_source, y_source), _ = parabola_domains(seed=0, n=200)
    with pytest.warns(UserWarning, match="no target data"):
        clf = ImportanceWeightedClassifier().fit(X_source, y_source)
    reference = LogisticRegression(max_iter=1000).fit(X_source, y_source)
    np.testing.assert_allclose(clf.predict_proba(X_source), reference.predict_proba(X_source))


def test_pipeline_weights_reach_the_final_step():
    (X_source, y_source), (X_target, y_target) = parabola_domains(seed=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    weighter = DomainClassifierWeighter(random_state=0)
    in_pipeline = ImportanceWeightedClassifier(pipe, weighter).fit(X_source, y_source, X_target=X_target)
    alone = ImportanceWeightedClassifier(LogisticRegression(), weighter).fit(
        StandardScaler().fit_transform(X_source),
        y_source,
        X_target=in_pipeline.estimator_[0].transform(X_target),
    )
    # Same weights either way (the weighter standardises internally), so the
    # same target accuracy up to solver tolerance.
    scaled_target = in_pipeline.estimator_[0].transform(X_target)
    assert in_pipeline.score(X_target, y_target) == pytest.approx(alone.score(scaled_target, y_target), abs=0.01)
    with pytest.raises(ValueError, match="final step 'kneighborsclassifier'"):
        ImportanceWeightedClassifier(make_pipeline(StandardScaler(), KNeighborsClassifier())).fit(
            X_source, y_source, X_target=X_target
        )


def test_estimator_without_sample_weight_is_refused():
    (X_source, y_source), (X_target, _) = parabola_domains(seed=0, n=100)
    with pytest.raises(ValueError, match="does not accept sample_weight"):
        ImportanceWeightedClassifier(KNeighborsClassifier()).fit(X_source, y_source, X_target=X_target)

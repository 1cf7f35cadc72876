"""The internal check: fine-tuning is kept only when it beats the frozen recipe by cross-validation."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from tiny_finetune import make_clf, make_data, tiny_recipe

from sktransfer import FineTuneClassifier, FrozenFeatureClassifier
from sktransfer.finetune import _check
from sktransfer.finetune._probe import fit_linear_probe

SCORE_KEYS = {
    "probe_accuracy",
    "probe_log_loss",
    "probe_p_value",
    "fine_tuned_p_value",
    "frozen_accuracy",
    "frozen_log_loss",
    "fine_tuned_accuracy",
    "fine_tuned_log_loss",
    "n_folds",
}


def _embeddings(clf, X):
    images = torch.stack([clf.module_.backbone.preprocessing.pil_transform()(_pil(x)) for x in X])
    clf.module_.eval()
    with torch.no_grad():
        return clf.module_.forward_between(images, None, "head")


def _pil(x):
    from PIL import Image

    return Image.fromarray(x)


def test_without_the_check_every_fit_fine_tunes_from_the_C1_probe(fitted):
    # ``fitted`` (conftest.py) is fitted with check_folds=None.
    assert fitted.check_folds is None
    assert fitted.fine_tuned_ and fitted.check_scores_ is None and fitted.probe_C_ == 1.0
    assert len(fitted.history) == fitted.max_epochs


def test_the_check_reports_cross_validated_scores_of_every_candidate(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=2).fit(X, y)
    assert set(clf.check_scores_) == SCORE_KEYS and clf.check_scores_["n_folds"] == 2
    for key in SCORE_KEYS - {"n_folds"}:
        assert np.isfinite(clf.check_scores_[key])
    assert 0 < clf.check_scores_["probe_p_value"] <= 1 and 0 < clf.check_scores_["fine_tuned_p_value"] <= 1
    assert clf.probe_C_ in _check.PROBE_CS
    kept = _check.best_candidate(clf.check_scores_)
    assert clf.fine_tuned_ == (kept == "fine_tuned") and (clf.frozen_ is not None) == (kept == "frozen")


@pytest.mark.parametrize(
    ("scores", "kept"),
    [
        # (accuracy, log-loss, p-value against the recipe) of the probe, the recipe, fine-tuning
        (((0.95, 0.2, 0.06), (0.8, 0.5, None), (0.95, 0.2, 0.2)), "frozen"),  # none significant: the recipe
        (((0.85, 0.3, 0.04), (0.8, 0.3, None), (0.95, 0.1, 0.06)), "probe"),  # only a significant one
        (((0.9, 0.3, 0.01), (0.8, 0.3, None), (0.95, 0.4, 0.01)), "fine_tuned"),  # both: accuracy first
        (((0.9, 0.4, 0.01), (0.8, 0.3, None), (0.9, 0.3, 0.01)), "fine_tuned"),  # equal: the lower log-loss
        (((0.9, 0.3, 0.01), (0.8, 0.3, None), (0.9, 0.3, 0.01)), "probe"),  # a full tie: the cheaper
        (((0.9, float("nan"), 0.01), (0.8, 0.3, None), (0.9, 0.6, 0.01)), "fine_tuned"),  # no log-loss loses
    ],
)
def test_the_recipe_is_kept_unless_a_challenger_beats_it_significantly(scores, kept):
    named = dict(zip(("probe", "frozen", "fine_tuned"), scores))
    flat = {
        f"{name}_{what}": v
        for name, triple in named.items()
        for what, v in zip(("accuracy", "log_loss", "p_value"), triple)
        if v is not None
    }
    assert _check.best_candidate(flat) == kept


def test_mcnemar_counts_only_the_images_one_model_gets_right():
    recipe = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    # 5 images only the challenger gets right, none only the recipe: 1/2**5.
    challenger = recipe.copy()
    challenger[3:8] = True
    assert _check.mcnemar_p_value(challenger, recipe) == pytest.approx(1 / 32)
    # 3 against 1: P(X >= 3) for X ~ Binomial(4, 1/2) = 5/16.
    challenger = np.array([0, 1, 1, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    assert (challenger & ~recipe).sum() == 3 and (~challenger & recipe).sum() == 1
    assert _check.mcnemar_p_value(challenger, recipe) == pytest.approx(5 / 16)
    # Images both get right or both wrong do not count; none disagree: no evidence.
    assert _check.mcnemar_p_value(recipe, recipe) == 1.0
    # The other way round, the challenger is worse: a large p-value.
    assert _check.mcnemar_p_value(recipe, challenger) == pytest.approx(15 / 16)


def test_when_fine_tuning_wins_the_final_fit_is_the_fit_without_the_check(tiny_backbone, data, monkeypatch):
    # One C to choose from: the check then changes nothing but whether to fine-tune.
    monkeypatch.setattr(_check, "PROBE_CS", (1.0,))
    monkeypatch.setattr(_check, "check_fine_tuning", _forced(_check.check_fine_tuning, "fine_tuned"))
    X, y = data
    checked = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=2).fit(X, y)
    plain = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=None).fit(X, y)
    assert checked.fine_tuned_ and len(checked.history) == len(plain.history)
    np.testing.assert_allclose(checked.predict_proba(X), plain.predict_proba(X), atol=1e-6)


def _forced(check, kept):
    def forced(*args, **kwargs):
        result = check(*args, **kwargs)
        result.kept = kept
        return result

    return forced


def _harmful(backbone):
    # A learning rate that wrecks the network: frozen features win.
    return make_clf(backbone, frozen=tiny_recipe(), check_folds=2, max_epochs=2, lr=50.0, lr_decay=1.0, unfreeze="all")


def test_a_harmful_fine_tuning_is_dropped(tiny_backbone):
    X, y = make_data(per_class=8)
    clf = _harmful(tiny_backbone).fit(X, y)
    assert not clf.fine_tuned_ and len(clf.history) == 0
    scores = clf.check_scores_
    assert max(scores["probe_accuracy"], scores["frozen_accuracy"]) >= scores["fine_tuned_accuracy"]


def test_when_the_probe_wins_the_model_is_the_frozen_network_with_the_probe(tiny_backbone, monkeypatch):
    monkeypatch.setattr(_check, "check_fine_tuning", _forced(_check.check_fine_tuning, "probe"))
    X, y = make_data(per_class=8)
    clf = _harmful(tiny_backbone).fit(X, y)
    assert not clf.fine_tuned_ and clf.frozen_ is None and len(clf.history) == 0
    for name, value in tiny_backbone.state_dict().items():
        torch.testing.assert_close(clf.module_.backbone.state_dict()[name], value)
    embeddings = _embeddings(clf, X)
    reference = torch.nn.Linear(embeddings.shape[1], 2)
    fit_linear_probe(reference, embeddings, torch.as_tensor(np.searchsorted(clf.classes_, y)), C=clf.probe_C_)
    with torch.no_grad():
        expected = torch.softmax(reference(embeddings), dim=1).numpy()
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-3)
    again = pickle.loads(pickle.dumps(clf))
    assert again.frozen_ is None
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_when_the_recipe_wins_it_is_the_model(tiny_backbone, monkeypatch):
    monkeypatch.setattr(_check, "check_fine_tuning", _forced(_check.check_fine_tuning, "frozen"))
    X, y = make_data(per_class=8)
    clf = _harmful(tiny_backbone).fit(X, y)
    assert not clf.fine_tuned_ and len(clf.history) == 0
    # The model is the recipe, fitted on every training image, with the check's folds as its cv...
    folds = _check.stratified_folds(np.searchsorted(clf.classes_, y), 2, seed=0)
    recipe = tiny_recipe(cv=folds).fit(X, y)
    assert isinstance(clf.frozen_, FrozenFeatureClassifier)
    assert clf.check_scores_["frozen_accuracy"] == recipe.cv_scores_["accuracy"]
    assert clf.check_scores_["frozen_log_loss"] == pytest.approx(recipe.cv_scores_["log_loss"])
    np.testing.assert_allclose(clf.predict_proba(X), recipe.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), recipe.predict(X))
    assert clf.score(X, y) == recipe.score(X, y) > 0.8
    # ...the backbone is the pretrained one, untouched...
    for name, value in tiny_backbone.state_dict().items():
        torch.testing.assert_close(clf.module_.backbone.state_dict()[name], value)
    # ...and the head the probe's logistic regression on all the training images.
    embeddings = _embeddings(clf, X)
    reference = torch.nn.Linear(embeddings.shape[1], 2)
    y_index = torch.as_tensor(np.searchsorted(clf.classes_, y))
    fit_linear_probe(reference, embeddings, y_index, C=clf.probe_C_)
    with torch.no_grad():
        expected = torch.softmax(reference(embeddings), dim=1)
        torch.testing.assert_close(torch.softmax(clf.module_.head[-1](embeddings), dim=1), expected, atol=1e-3, rtol=0)
    # It travels as a fitted model.
    again = pickle.loads(pickle.dumps(clf))
    assert not again.fine_tuned_ and again.check_scores_ == clf.check_scores_ and again.probe_C_ == clf.probe_C_
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    # Training on (partial_fit) fine-tunes the network from the probe: the network predicts again.
    clf.set_params(lr=1e-3, max_epochs=1).partial_fit(X, y)
    assert clf.fine_tuned_ and clf.frozen_ is None and len(clf.history) == 1


def test_the_frozen_contender_is_a_clone_of_frozen_else_the_recipe_seeded_alike(tiny_backbone):
    given = tiny_recipe(n_views=3)
    contender = _check.frozen_recipe(make_clf(tiny_backbone, frozen=given))
    assert contender is not given and contender.get_params()["n_views"] == 3
    default = _check.frozen_recipe(FineTuneClassifier(random_state=7))
    assert isinstance(default, FrozenFeatureClassifier) and default.random_state == 7
    assert default.get_params() == FrozenFeatureClassifier(random_state=7).get_params()


def test_a_bad_frozen_is_refused_naming_the_parameter(tiny_backbone, data):
    X, y = data
    with pytest.raises(InvalidParameterError, match="'frozen' parameter"):
        make_clf(tiny_backbone, check_folds=2, frozen="recipe").fit(X, y)


def test_the_check_is_skipped_when_a_class_has_one_image(tiny_backbone, data):
    X, y = data
    keep = np.r_[np.flatnonzero(y == "ant"), np.flatnonzero(y == "bee")[:1]]
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=3).fit(X[keep], y[keep])
    assert clf.fine_tuned_ and clf.check_scores_ is None


def test_the_check_is_skipped_with_a_validation_split(tiny_backbone, data):
    from skorch.dataset import ValidSplit

    X, y = data
    clf = make_clf(
        tiny_backbone, frozen=tiny_recipe(), check_folds=3, train_split=ValidSplit(4, stratified=True), refit=False
    ).fit(X, y)
    assert clf.fine_tuned_ and clf.check_scores_ is None


def test_the_check_with_augmentation_runs_the_network_on_images(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=2, augment="light").fit(X, y)
    assert set(clf.check_scores_) == SCORE_KEYS


def test_the_folds_are_stratified_and_seeded():
    y = np.repeat([0, 1, 2], [5, 3, 2])
    folds = _check.stratified_folds(y, 3, seed=0)
    assert len(folds) == 2  # the smallest class has 2 images
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(10))
    for _, test in folds:
        assert set(y[test]) == {0, 1, 2}
    again = _check.stratified_folds(y, 3, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert _check.stratified_folds(np.array([0, 0, 1]), 3, seed=0) is None


def test_probe_C_is_chosen_by_held_out_log_loss():
    rng = np.random.default_rng(0)
    # Separable classes: the weakest penalty fits the held-out images best.
    x = torch.as_tensor(np.r_[rng.normal(-3, 0.3, (10, 2)), rng.normal(3, 0.3, (10, 2))], dtype=torch.float32)
    y = torch.as_tensor(np.repeat([0, 1], 10))
    folds = _check.stratified_folds(y.numpy(), 2, seed=0)
    C, losses, heldout = _check.choose_probe_C(x, y, folds)
    assert C == max(_check.PROBE_CS) and losses[C] == min(losses.values())
    # The chosen probe's held-out logits, fold by fold, as a fit at that C gives them.
    assert len(heldout) == len(folds)
    for (train, test), logits in zip(folds, heldout):
        torch.testing.assert_close(logits, _check._probe_logits(x, y, train, test, C, None))
    # Pure noise: the strongest penalty.
    noise = torch.as_tensor(rng.normal(size=(20, 50)), dtype=torch.float32)
    assert _check.choose_probe_C(noise, y, folds)[0] == min(_check.PROBE_CS)


def test_check_folds_is_a_parameter_for_clone_set_params_and_searches(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=2, max_epochs=1, head_epochs=0)
    assert clone(clf).check_folds == 2
    assert clf.set_params(check_folds=None).check_folds is None
    search = GridSearchCV(clf, {"check_folds": [None, 2]}, cv=2, refit=False).fit(X, y)
    assert search.best_params_["check_folds"] in (None, 2)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.parametrize("bad", [1, 0, -2, 2.5, "3"])
def test_bad_check_folds_is_refused_naming_the_parameter(tiny_backbone, data, bad):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = data
    with pytest.raises(InvalidParameterError, match="'check_folds' parameter"):
        make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=bad).fit(X, y)


def test_the_folds_print_nothing_and_the_check_prints_one_line(tiny_backbone, data, capsys):
    X, y = data
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=2, verbose=1, max_epochs=1, head_epochs=0).fit(X, y)
    out = capsys.readouterr().out
    assert clf.verbose == 1
    assert out.count("internal check, 2-fold accuracy: frozen features ") == 1 and "probe (C=" in out
    assert "Re-initializing" not in out
    # The final fit's epochs are printed when it fine-tunes.
    assert ("epoch" in out) == clf.fine_tuned_


def test_partial_fit_runs_no_check_and_reports_so(tiny_backbone, data):
    X, y = data
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=3, max_epochs=1).partial_fit(X, y)
    assert clf.fine_tuned_ and clf.check_scores_ is None and clf.probe_C_ == 1.0
    assert len(clf.history) == 1


def test_an_interrupted_check_keeps_the_frozen_probe_and_says_so(tiny_backbone, data):
    from skorch.callbacks import Callback

    class InterruptFirstRun(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    X, y = data
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(), check_folds=2, callbacks=[("stop", InterruptFirstRun())])
    with pytest.warns(UserWarning, match="the internal check was interrupted after 1 epoch"):
        clf.fit(X, y)
    assert clf.interrupted_ and not clf.fine_tuned_ and clf.check_scores_ is None
    assert len(clf.history) == 0 and clf.score(X, y) > 0.5


def test_frozen_parameters_are_set_on_the_recipe_as_scikit_learn_nests_them(tiny_backbone):
    clf = make_clf(tiny_backbone, frozen=tiny_recipe(n_views=1))
    clf.set_params(frozen__n_views=3)
    assert clf.frozen.n_views == 3 and "frozen__n_views" not in clf.get_params(deep=False)
    # As a search sets them: on a clone, whose recipe is a clone too.
    searched = clone(clf).set_params(frozen__n_views=2)
    assert searched.frozen.n_views == 2 and clf.frozen.n_views == 3
    with pytest.raises(ValueError, match="frozen is None"):
        make_clf(tiny_backbone).set_params(frozen__n_views=2)

"""scikit-learn's estimator checks, and the image checks, over every estimator of the package.

One table of small init parameters feeds the checks: tiny or randomly
initialised backbones, so the whole module runs in seconds on 2 CPU cores.
Image estimators also run sktransfer's own image suite
(:mod:`sktransfer.utils.estimator_checks`), which covers on real image
collections what the tabular checks they cannot pass used to cover.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import sktransfer
from sktransfer.image._validation import ImageInputMixin
from sktransfer.utils.estimator_checks import image_estimator_checks


def _not_images(checks):
    """Expected failures of tabular checks whose tables are not images.

    ``checks`` maps a check to (the column count of its tables, the image
    check covering the same ground). Rows of a table are read as images only
    when their length is a square or three times a square; any other width
    is refused with a ValueError asking for ``image_shape``, so these checks
    fail on every run, before any learning happens.
    """
    return {
        check: f"its tables have {columns} columns, which are not images (neither a "
        f"square nor three times a square) and are refused with a ValueError; "
        f"{replacement} covers this on images"
        for check, (columns, replacement) in checks.items()
    }


# Tabular checks that both image estimators fail, and what replaces them.
_IMAGE_ESTIMATOR_TABLES = {
    "check_estimators_overwrite_params": (2, "check_image_clone_and_pickle"),
    "check_estimators_fit_returns_self": (2, "every image check (fit must return self)"),
    "check_readonly_memmap_input": (2, "check_image_inputs_unchanged"),
    "check_estimators_dtypes": (5, "check_image_containers"),
    "check_dtype_object": (10, "check_image_containers"),
    "check_fit2d_1sample": (10, "check_image_subset_invariance"),
    "check_fit_idempotent": (2, "check_image_clone_and_pickle"),
    "check_fit_check_is_fitted": (2, "check_image_not_fitted"),
    "check_n_features_in": (2, "check_image_fitted_attributes and check_image_table_contract"),
}

# Tabular classifier checks the fine-tuner fails for the same reason.
_CLASSIFIER_TABLES = {
    "check_classifier_data_not_an_array": (2, "check_image_containers"),
    "check_classifiers_one_label_sample_weights": (10, "test_finetune.py's label tests"),
    "check_classifiers_classes": (2, "check_image_fitted_attributes and check_image_string_labels"),
    "check_estimators_partial_fit_n_features": (2, "check_image_table_contract"),
    "check_classifiers_regression_target": (10, "test_finetune.py's label tests"),
    "check_requires_y_none": (2, "test_finetune.py's label tests"),
    "check_classifiers_train": (2, "check_image_fitted_attributes (learning: test_finetune.py)"),
    "check_classifiers_train(readonly_memmap=True)": (2, "check_image_inputs_unchanged"),
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)": (2, "check_image_inputs_unchanged"),
    "check_class_weight_classifiers": (2, "test_finetune.py's class weight tests"),
}

# Tabular checks of sample weights (the fine-tuner takes none) and the rest
# of the classifier checks, which FrozenFeatureClassifier fails the same way
# (it has no partial_fit, so that check passes).
_FROZEN_CLASSIFIER_TABLES = {
    **{check: spec for check, spec in _CLASSIFIER_TABLES.items() if check != "check_estimators_partial_fit_n_features"},
    "check_decision_proba_consistency": (2, "check_image_fitted_attributes"),
    "check_sample_weights_pandas_series": (2, "test_frozen_classifier.py's sample weight test"),
    "check_sample_weights_not_an_array": (2, "test_frozen_classifier.py's sample weight test"),
    "check_sample_weights_shape": (2, "test_frozen_classifier.py's sample weight test"),
    "check_sample_weights_not_overwritten": (2, "test_frozen_classifier.py's sample weight test"),
    "check_all_zero_sample_weights_error": (20, "the classifier's own check, on embeddings"),
    "check_sample_weight_equivalence_on_dense_data": (30, "test_frozen_classifier.py's sample weight test"),
}

# (estimator instance, {check name: reason it is expected to fail}); the
# names are scikit-learn checks and, for image estimators, image checks.
ESTIMATORS = [
    # --- representation extraction ---
    # batch_size=1 for exact sample-order invariance (see the row below).
    (
        sktransfer.PretrainedFeatureExtractor(model="tiny_convnet", weights=None, batch_size=1, num_workers=0),
        _not_images(_IMAGE_ESTIMATOR_TABLES),
    ),
    # Two views per image keep its fits cheap; the views are drawn from the
    # seeded generator, so fits repeat exactly.
    (
        sktransfer.FrozenFeatureClassifier(
            extractor=sktransfer.PretrainedFeatureExtractor(
                model="tiny_convnet", weights=None, batch_size=1, num_workers=0
            ),
            n_views=2,
            random_state=0,
        ),
        {**_not_images(_IMAGE_ESTIMATOR_TABLES), **_not_images(_FROZEN_CLASSIFIER_TABLES)},
    ),
    # The few-shot head, on embeddings (3-fold CV over 5 values of C at fit).
    (sktransfer.FewShotLinearClassifier(), {}),
    # --- fine-tuning ---
    (
        sktransfer.FineTuneClassifier(
            model="tiny_convnet",
            weights=None,
            max_epochs=2,
            head_epochs=1,
            batch_size=16,
            train_split=None,
            # The internal check fine-tunes once per fold: the estimator
            # checks test the training machinery, fitted once
            # (tests/finetune/test_finetune_check.py tests the check).
            check_folds=None,
            random_state=0,
            num_workers=0,
            device="cpu",
            verbose=0,
            # One image per prediction batch: oneDNN picks kernels by batch
            # shape, so a sample's float rounding would otherwise depend on
            # which samples share its batch (sample-order invariance check).
            iterator_valid__batch_size=1,
        ),
        {
            "check_no_attributes_set_in_init": "skorch's NeuralNet.__init__ itself sets "
            "history_, initialized_ and virtual_params_",
            "check_set_params": "skorch lists its private _params_to_validate among the "
            "params; setting it to a float breaks skorch's set_params",
            **_not_images(_IMAGE_ESTIMATOR_TABLES),
            **_not_images(_CLASSIFIER_TABLES),
        },
    ),
    # --- domain shift ---
    (sktransfer.ResampledClassifier(random_state=0), {}),
    (sktransfer.ResampledClassifier(sampler="over", random_state=0), {}),
    (sktransfer.LabelShiftAdapter(), {}),
    (sktransfer.LabelShiftAdapter(method="bbse", calibration="temperature"), {}),
    (sktransfer.CORAL(), {}),
    # Without X_target or a fitted weighter it warns and fits unweighted.
    (sktransfer.ImportanceWeightedClassifier(), {}),
    (
        sktransfer.DomainClassifierWeighter(),
        dict.fromkeys(
            [
                "check_dict_unchanged",
                "check_dont_overwrite_parameters",
                "check_dtype_object",
                "check_estimators_dtypes",
                "check_estimators_fit_returns_self",
                "check_estimators_nan_inf",
                "check_estimators_overwrite_params",
                "check_estimators_pickle",
                "check_f_contiguous_array_estimator",
                "check_fit2d_1feature",
                "check_fit2d_predict1d",
                "check_fit_check_is_fitted",
                "check_fit_idempotent",
                "check_fit_score_takes_y",
                "check_methods_sample_order_invariance",
                "check_methods_subset_invariance",
                "check_n_features_in",
                "check_n_features_in_after_fitting",
                "check_pipeline_consistency",
                "check_positive_only_tag_during_fit",
                "check_readonly_memmap_input",
            ],
            "fit(X_source, X_target) takes two feature matrices, not (X, y): the "
            "check's 1-d y is rejected as X_target (fit, pickle and clone are "
            "tested with two domains in tests/shift/test_covariate_shift.py)",
        ),
    ),
]


def _instances():
    return [est for est, _ in ESTIMATORS]


def _expected_failed_checks(estimator):
    for est, expected in ESTIMATORS:
        if est is estimator:
            return expected
    return {}


@parametrize_with_checks(_instances(), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _image_check_params():
    for estimator, expected in ESTIMATORS:
        if not isinstance(estimator, ImageInputMixin):
            continue
        for check in image_estimator_checks(estimator):
            reason = expected.get(check.__name__)
            # strict: a check that starts passing must lose its row here.
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)] if reason else []
            yield pytest.param(estimator, check, id=f"{type(estimator).__name__}-{check.__name__}", marks=marks)


@pytest.mark.parametrize("estimator, check", list(_image_check_params()))
def test_image_estimator(estimator, check):
    check(estimator)


def test_every_image_estimator_runs_the_image_checks():
    image_estimators = {type(est).__name__ for est, _ in ESTIMATORS if isinstance(est, ImageInputMixin)}
    assert image_estimators == {"PretrainedFeatureExtractor", "FrozenFeatureClassifier", "FineTuneClassifier"}


def test_table_covers_every_public_estimator():
    from sklearn.base import BaseEstimator

    public = {
        name
        for name in sktransfer.__all__
        if isinstance(getattr(sktransfer, name), type) and issubclass(getattr(sktransfer, name), BaseEstimator)
    }
    covered = {type(est).__name__ for est, _ in ESTIMATORS}
    assert public <= covered, f"estimators missing from the table: {sorted(public - covered)}"

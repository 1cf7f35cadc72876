"""Label shift: re-estimate class priors on the target and correct the posteriors.

Under label (prior) shift P(Y) changes while P(X|Y) stays put. Then the target
posterior is the source posterior re-weighted by the prior ratio,
p_t(y|x) ∝ p_s(y|x) · π_t(y) / π_s(y), so all that is needed is π_t, which can
be estimated from unlabelled target features:

* ``"em"``: expectation-maximisation of Saerens et al. (2002), which needs
  calibrated source posteriors. Alexandari et al. (2020) showed that EM on
  posteriors calibrated with *bias-corrected temperature scaling* (BCTS: one
  temperature plus one bias per class, fitted on held-out predictions) is hard
  to beat.
* ``"bbse"``: black-box shift estimation of Lipton et al. (2018), which solves
  C w = μ with C the joint confusion matrix P_s(ŷ=i, y=j) on held-out source
  data and μ the distribution of predicted labels on the target. Its error
  grows with the condition number of C, which is reported.
"""

from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import base_classifier

# Floor on probabilities before taking logs: keeps temperature scaling finite
# when the base model outputs exact zeros.
_PROBA_FLOOR = 1e-12


def _fit_calibration(log_proba, y_index, *, with_bias):
    """Fit temperature (and per-class biases) minimising held-out log-loss.

    Returns ``(temperature, bias)``; calibrated log-posteriors are
    ``log_softmax(log_proba / temperature + bias)``.
    """
    n_samples, n_classes = log_proba.shape
    onehot = np.eye(n_classes)[y_index]

    def loss_and_grad(params):
        log_temperature = params[0]
        bias = params[1:] if with_bias else np.zeros(n_classes)
        scaled = log_proba * np.exp(-log_temperature)
        logits = scaled + bias
        log_p = log_softmax(logits, axis=1)
        loss = -np.sum(onehot * log_p) / n_samples
        residual = (np.exp(log_p) - onehot) / n_samples  # d loss / d logits
        grad_log_temperature = -np.sum(residual * scaled)
        grad = [grad_log_temperature]
        if with_bias:
            grad.extend(residual.sum(axis=0))
        return loss, np.asarray(grad)

    start = np.zeros(1 + (n_classes if with_bias else 0))
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B")
    bias = result.x[1:] if with_bias else np.zeros(n_classes)
    return float(np.exp(result.x[0])), bias


def _em_priors(proba, source_priors, *, max_iter, tol):
    """Saerens et al. (2002) EM for the target priors; returns (priors, n_iter)."""
    priors = source_priors.copy()
    for n_iter in range(1, max_iter + 1):
        adjusted = proba * (priors / source_priors)
        adjusted /= adjusted.sum(axis=1, keepdims=True)
        new_priors = adjusted.mean(axis=0)
        converged = np.max(np.abs(new_priors - priors)) < tol
        priors = new_priors
        if converged:
            break
    return priors, n_iter


def _bbse_priors(proba, confusion, source_priors):
    """Lipton et al. (2018) black-box shift estimate of the target priors."""
    n_classes = confusion.shape[0]
    predicted = np.argmax(proba, axis=1)
    predicted_distribution = np.bincount(predicted, minlength=n_classes) / len(predicted)
    ratio, *_ = np.linalg.lstsq(confusion, predicted_distribution, rcond=None)
    # The least-squares ratio can go negative from sampling noise; a prior cannot.
    priors = np.clip(ratio, 0.0, None) * source_priors
    if priors.sum() == 0:
        return source_priors.copy()
    return priors / priors.sum()


class LabelShiftAdapter(ClassifierMixin, BaseEstimator):
    """Classifier that re-estimates class priors on the target domain.

    :meth:`fit` learns on labelled source data and calibrates the posteriors
    on out-of-fold predictions; :meth:`fit_target` estimates the class priors
    of unlabelled target data, after which :meth:`predict_proba` and
    :meth:`predict` are corrected for them. Before :meth:`fit_target` the
    target priors equal the source class frequencies (no correction).

    Parameters
    ----------
    estimator : classifier with ``predict_proba``, default=None
        Base classifier. ``None`` means ``LogisticRegression(max_iter=1000)``.
    method : {"em", "bbse"}, default="em"
        Prior estimator: EM (Saerens et al., 2002) or black-box shift
        estimation (Lipton et al., 2018).
    calibration : {"bcts", "temperature"} or None, default="bcts"
        Calibration of the source posteriors, fitted on out-of-fold
        predictions: bias-corrected temperature scaling, temperature scaling,
        or none. EM assumes calibrated posteriors.
    cv : int, default=5
        Stratified folds for the out-of-fold predictions used to calibrate
        and to estimate the BBSE confusion matrix.
    em_max_iter : int, default=1000
        Maximum EM iterations.
    em_tol : float, default=1e-8
        EM stops when no prior moves by more than ``em_tol``.

    Attributes
    ----------
    estimator_ : classifier
        Base classifier refitted on all source data.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    source_priors_ : ndarray of shape (n_classes,)
        Class frequencies of the training data, ordered like ``classes_``.
    target_priors_ : ndarray of shape (n_classes,)
        Estimated target priors, ordered like ``classes_`` (the source priors
        until :meth:`fit_target` is called).
    class_weights_ : ndarray of shape (n_classes,)
        ``target_priors_ / source_priors_``.
    temperature_ : float
        Fitted temperature (1.0 without calibration).
    bias_ : ndarray of shape (n_classes,)
        Fitted per-class biases (zeros unless ``calibration="bcts"``).
    confusion_matrix_ : ndarray of shape (n_classes, n_classes)
        Out-of-fold joint confusion matrix ``P_s(predicted=i, true=j)``.
    confusion_condition_number_ : float
        Condition number of ``confusion_matrix_``: BBSE's error bound grows
        with it; values in the hundreds mean unreliable BBSE estimates.
    n_em_iter_ : int
        EM iterations of the last :meth:`fit_target` (0 for BBSE or before).
    n_features_in_ : int
        Number of features.

    References
    ----------
    M. Saerens, P. Latinne, C. Decaestecker (2002). Adjusting the outputs of a
    classifier to new a priori probabilities: a simple procedure. Neural
    Computation 14(1).

    Z. Lipton, Y.-X. Wang, A. Smola (2018). Detecting and correcting for label
    shift with black box predictors. ICML.

    A. Alexandari, A. Kundaje, A. Shrikumar (2020). Maximum likelihood with
    bias-corrected calibration is hard-to-beat at label shift adaptation. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import LabelShiftAdapter
    >>> rng = np.random.default_rng(0)
    >>> centers = np.array([[0.0, 0.0], [3.0, 0.0]])
    >>> y = np.repeat([0, 1], 500)
    >>> X = centers[y] + rng.normal(size=(1000, 2))
    >>> y_target = rng.choice(2, size=1000, p=[0.8, 0.2])
    >>> X_target = centers[y_target] + rng.normal(size=(1000, 2))
    >>> adapter = LabelShiftAdapter().fit(X, y).fit_target(X_target)
    >>> bool(abs(adapter.target_priors_[0] - 0.8) < 0.05)
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "method": [StrOptions({"em", "bbse"})],
        "calibration": [StrOptions({"bcts", "temperature"}), None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "em_max_iter": [Interval(Integral, 1, None, closed="left")],
        "em_tol": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        estimator=None,
        *,
        method="em",
        calibration="bcts",
        cv=5,
        em_max_iter=1000,
        em_tol=1e-8,
    ):
        self.estimator = estimator
        self.method = method
        self.calibration = calibration
        self.cv = cv
        self.em_max_iter = em_max_iter
        self.em_tol = em_tol

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit on labelled source data and calibrate on out-of-fold predictions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source features.
        y : array-like of shape (n_samples,)
            Source labels.

        Returns
        -------
        self : LabelShiftAdapter
            Fitted adapter.
        """
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has one class ({self.classes_[0]!r}); label-shift "
                "correction needs at least 2 classes."
            )
        if counts.min() < 2:
            rare = self.classes_[np.argmin(counts)]
            raise ValueError(
                f"Class {rare!r} has only {counts.min()} sample(s): the out-of-fold "
                "calibration needs at least 2 samples per class."
            )
        estimator = base_classifier(self.estimator)
        # Fewer folds when a class is rarer than `cv`, so every fold sees every class.
        n_folds = min(self.cv, int(counts.min()))
        out_of_fold = cross_val_predict(
            clone(estimator),
            X,
            y_index,
            cv=StratifiedKFold(n_folds),
            method="predict_proba",
        )
        log_oof = np.log(np.clip(out_of_fold, _PROBA_FLOOR, None))
        if self.calibration is None:
            self.temperature_, self.bias_ = 1.0, np.zeros(len(self.classes_))
        else:
            self.temperature_, self.bias_ = _fit_calibration(
                log_oof, y_index, with_bias=self.calibration == "bcts"
            )
        calibrated_oof = self._calibrate(log_oof)
        predicted = np.argmax(calibrated_oof, axis=1)
        n_classes = len(self.classes_)
        confusion = np.zeros((n_classes, n_classes))
        np.add.at(confusion, (predicted, y_index), 1.0)
        self.confusion_matrix_ = confusion / len(y_index)
        self.confusion_condition_number_ = float(np.linalg.cond(self.confusion_matrix_))
        self.source_priors_ = counts / counts.sum()
        self.estimator_ = clone(estimator).fit(X, y)
        self.target_priors_ = self.source_priors_.copy()
        self.class_weights_ = np.ones(n_classes)
        self.n_em_iter_ = 0
        return self

    def _calibrate(self, log_proba):
        return softmax(log_proba / self.temperature_ + self.bias_, axis=1)

    def _source_posteriors(self, X):
        """Calibrated source posteriors, columns ordered like ``classes_``."""
        proba = self.estimator_.predict_proba(X)
        return self._calibrate(np.log(np.clip(proba, _PROBA_FLOOR, None)))

    def fit_target(self, X_target):
        """Estimate the class priors of unlabelled target data.

        Parameters
        ----------
        X_target : array-like of shape (n_target, n_features)
            Target-domain features, from the same backbone as the training
            features.

        Returns
        -------
        self : LabelShiftAdapter
            The adapter, now correcting for the estimated priors.
        """
        check_is_fitted(self)
        X_target = validate_data(self, X_target, reset=False)
        proba = self._source_posteriors(X_target)
        if self.method == "em":
            self.target_priors_, self.n_em_iter_ = _em_priors(
                proba, self.source_priors_, max_iter=self.em_max_iter, tol=self.em_tol
            )
        else:
            self.target_priors_ = _bbse_priors(proba, self.confusion_matrix_, self.source_priors_)
            self.n_em_iter_ = 0
        self.class_weights_ = self.target_priors_ / self.source_priors_
        return self

    def predict_proba(self, X):
        """Target-domain class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Calibrated source posteriors re-weighted by
            ``target_priors_ / source_priors_`` and renormalised.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        adjusted = self._source_posteriors(X) * self.class_weights_
        total = adjusted.sum(axis=1, keepdims=True)
        # A row can lose all mass when every plausible class got prior 0.
        empty = total[:, 0] == 0
        adjusted[empty] = self.target_priors_
        total[empty] = 1.0
        return adjusted / total

    def predict(self, X):
        """Most probable class under the target priors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels.
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

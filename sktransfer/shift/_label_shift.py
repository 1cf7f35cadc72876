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

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.base import _fit_context, clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from .._typing import Estimator
from ._base import WrappedClassifier

# Floor on probabilities before taking logs: keeps temperature scaling finite
# when the base model outputs exact zeros.
_PROBA_FLOOR = 1e-12

# Smallest target sample whose priors are estimated. Even with a perfect
# classifier, a prior estimated from n samples has standard error up to
# 0.5 / sqrt(n); n = 25 bounds it by 0.1, the size of a prior shift worth
# correcting, and is where the normal approximation behind the support check
# becomes usable. Below it the estimate is mostly noise (one sample gives a
# prior of 1 to whichever class it looks like).
MIN_TARGET_SAMPLES = 25

# One-sided z-score above which the target's mean confidence falls too far
# short of what label shift predicts (false-alarm rate about 0.1% when the
# label-shift assumption holds).
_SUPPORT_Z_THRESHOLD = 3.0


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
    for n_iter in range(1, max_iter + 1):  # noqa: B007 -- returned after the loop
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


class LabelShiftAdapter(WrappedClassifier):
    """Classifier that re-estimates class priors on the target domain.

    :meth:`fit` learns on labelled source data and calibrates the posteriors
    on out-of-fold predictions; :meth:`fit_target` estimates the class priors
    of unlabelled target data, after which :meth:`predict_proba` and
    :meth:`predict` are corrected for them. Before :meth:`fit_target` the
    target priors equal the source class frequencies (no correction).

    :meth:`fit_target` refuses fewer than ``MIN_TARGET_SAMPLES`` (25) target
    samples: a class prior estimated from n samples has a standard error of
    up to ``0.5 / sqrt(n)``, so below 25 the answer is "cannot tell", not a
    prior of 1 for whichever class a single sample resembles. It also checks
    the label-shift assumption (the target is a re-weighted mixture of the
    source classes): under it, the target's mean calibrated confidence
    ``max_y p_s(y|x)`` is the source's held-out per-class mean confidence
    averaged with the estimated target priors. A target mean confidence that
    falls short of that by more than 3 standard errors means many target
    samples lie between or away from the source classes (e.g. a class never
    seen in training), and a warning says the priors are unreliable.

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
    source_confidence_ : ndarray of shape (n_classes,)
        Mean calibrated out-of-fold confidence ``max_y p_s(y|x)`` of the
        source samples of each class.
    target_confidence_ : float
        Mean calibrated confidence on the last target (NaN before
        :meth:`fit_target`).
    expected_target_confidence_ : float
        The mean confidence label shift predicts for that target:
        ``source_confidence_`` averaged with ``target_priors_``.
    confidence_shortfall_z_ : float
        ``(expected_target_confidence_ - target_confidence_)`` in standard
        errors; above 3, :meth:`fit_target` warns that the target looks
        outside the source's support.
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

    # The inner decision_function knows nothing of the target priors and would
    # contradict predict, so only the (corrected) probabilities are delegated.
    _delegated_methods = ("predict_proba",)

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
        estimator: Estimator | None = None,
        *,
        method: Literal["em", "bbse"] = "em",
        calibration: Literal["bcts", "temperature"] | None = "bcts",
        cv: int = 5,
        em_max_iter: int = 1000,
        em_tol: float = 1e-8,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.calibration = calibration
        self.cv = cv
        self.em_max_iter = em_max_iter
        self.em_tol = em_tol

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y: ArrayLike) -> LabelShiftAdapter:
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
        X, y = self._validate_training_data(X, y)
        self.classes_, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        if counts.min() < 2:
            rare = self.classes_[np.argmin(counts)]
            raise ValueError(
                f"Class {rare!r} has only {counts.min()} sample(s): the out-of-fold "
                "calibration needs at least 2 samples per class."
            )
        estimator = self._inner_estimator()
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
            self.temperature_, self.bias_ = _fit_calibration(log_oof, y_index, with_bias=self.calibration == "bcts")
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
        confidence = calibrated_oof.max(axis=1)
        self.source_confidence_ = np.array([confidence[y_index == k].mean() for k in range(n_classes)])
        self._source_confidence_var = np.array([confidence[y_index == k].var() for k in range(n_classes)])
        self._source_class_counts = counts
        self.target_confidence_ = self.expected_target_confidence_ = np.nan
        self.confidence_shortfall_z_ = np.nan
        return self

    def _confidence_shortfall(self, proba):
        """Expected and observed mean target confidence, and the shortfall in standard errors."""
        priors = self.target_priors_
        observed = float(proba.max(axis=1).mean())
        expected = float(priors @ self.source_confidence_)
        # Variance of one target confidence under the label-shift mixture, and
        # of the expected value from the finite source sample behind it.
        mixture_var = priors @ (self._source_confidence_var + self.source_confidence_**2) - expected**2
        standard_error = np.sqrt(
            max(mixture_var, 0.0) / len(proba) + priors**2 @ (self._source_confidence_var / self._source_class_counts)
        )
        # A source whose every confidence is the same (e.g. saturated at 1)
        # has zero spread; the floor keeps rounding noise from reading as a shift.
        standard_error = max(float(standard_error), 1e-6)
        return observed, expected, (expected - observed) / standard_error

    def _calibrate(self, log_proba):
        return softmax(log_proba / self.temperature_ + self.bias_, axis=1)

    def _calibrated_posteriors(self, proba):
        """Calibrated source posteriors from the inner estimator's probabilities."""
        return self._calibrate(np.log(np.clip(proba, _PROBA_FLOOR, None)))

    def fit_target(self, X_target: ArrayLike) -> LabelShiftAdapter:
        """Estimate the class priors of unlabelled target data.

        Parameters
        ----------
        X_target : array-like of shape (n_target, n_features)
            Target-domain features, from the same backbone as the training
            features; at least ``MIN_TARGET_SAMPLES`` (25) rows.

        Returns
        -------
        self : LabelShiftAdapter
            The adapter, now correcting for the estimated priors.

        Raises
        ------
        ValueError
            With fewer than 25 target samples: the priors cannot be told
            apart from sampling noise.

        Warns
        -----
        UserWarning
            When the target's mean confidence falls short of what label shift
            predicts (see the class notes): the target looks outside the
            source's support and the estimated priors are unreliable.
        """
        X_target = self._validate_prediction_input(X_target)
        if len(X_target) < MIN_TARGET_SAMPLES:
            raise ValueError(
                f"X_target has {len(X_target)} sample(s); estimating target class "
                f"priors needs at least {MIN_TARGET_SAMPLES}: a prior estimated from "
                "n samples has a standard error of up to 0.5/sqrt(n), so with fewer "
                "the estimate cannot be told apart from noise. Collect more "
                "unlabelled target samples, or keep the source priors."
            )
        proba = self._calibrated_posteriors(self.estimator_.predict_proba(X_target))
        if self.method == "em":
            self.target_priors_, self.n_em_iter_ = _em_priors(
                proba, self.source_priors_, max_iter=self.em_max_iter, tol=self.em_tol
            )
        else:
            self.target_priors_ = _bbse_priors(proba, self.confusion_matrix_, self.source_priors_)
            self.n_em_iter_ = 0
        self.class_weights_ = self.target_priors_ / self.source_priors_
        self.target_confidence_, self.expected_target_confidence_, self.confidence_shortfall_z_ = (
            self._confidence_shortfall(proba)
        )
        if self.confidence_shortfall_z_ > _SUPPORT_Z_THRESHOLD:
            warnings.warn(
                "X_target looks outside the source's support: its mean calibrated "
                f"confidence is {self.target_confidence_:.3f}, where label shift with "
                f"the estimated priors predicts {self.expected_target_confidence_:.3f} "
                f"({self.confidence_shortfall_z_:.1f} standard errors lower). Target "
                "samples from classes never seen in training, or a change in how the "
                "classes look (covariate shift), break the label-shift assumption, so "
                "the estimated priors are unreliable.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _adjust_proba(self, proba):
        adjusted = self._calibrated_posteriors(proba) * self.class_weights_
        total = adjusted.sum(axis=1, keepdims=True)
        # A row can lose all mass when every plausible class got prior 0.
        empty = total[:, 0] == 0
        adjusted[empty] = self.target_priors_
        total[empty] = 1.0
        return adjusted / total

    def predict(self, X: ArrayLike) -> NDArray:
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
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

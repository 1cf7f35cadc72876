"""FewShotLinearClassifier: a linear head on embeddings that fits the number of shots.

Each embedding is first power-normalised, every component ``x`` replaced by
``sign(x) * |x| ** power`` (the signed square root at the default 0.5): a
pooled CNN embedding is a non-negative, heavy-tailed vector in which a few
strongly firing channels dominate distances, and the square root evens them
out. This is the power normalisation of Fisher vectors (Perronnin, Sanchez
and Mensink, ECCV 2010) and the power transform of transfer-based few-shot
learning (Hu, Gripon and Pateux, ICANN 2021). 0.5 was chosen on the
many-class development set that chose ``C`` (see the class), against 0.3,
0.7 and 1 (none).

Prototypes (the nearest class mean) and a logistic regression are linear
models on the same centred, L2-normalised embeddings. A logistic
regression whose penalty outweighs its few data terms has weights along the
centred class means (its first gradient step is the prototypes); as the
shots grow, the data terms grow with them (scikit-learn sums the loss over
the rows) and the same ``C`` lets the model move away from the prototypes
toward the discriminative solution. So the default is one logistic
regression at a fixed ``C`` on unit-length embeddings, which moves between
the two by itself. Choosing among the prototypes and a path of ``C`` by
internal cross-validation (``strategy="auto"``) is kept as an option: on
folds of one or two images per class its scores are noise, and it lost to
the fixed ``C`` on a many-class development set.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, check_cv
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

#: Cosine similarities to the prototypes are multiplied by this before the
#: softmax: a cosine gap of 0.1 between two classes gives odds of e to 1.
PROTOTYPE_SCALE = 10.0


def _signed_power(X, power):
    """``sign(X) * |X| ** power`` element-wise; ``X`` itself at ``power=1``."""
    if power == 1:
        return X
    return np.sign(X) * np.abs(X) ** power


def _centre_normalise(X, mean):
    """Rows of ``X`` minus ``mean``, scaled to unit L2 norm (a zero row stays zero)."""
    Z = X - mean
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(norms > 0, norms, 1.0)


def _prototype_weights(Z, y_index, n_classes, sample_weight):
    """Unit-norm weighted class means of ``Z``, scaled: ``(coef, intercept)`` of a linear model."""
    prototypes = np.zeros((n_classes, Z.shape[1]))
    np.add.at(prototypes, y_index, Z * sample_weight[:, None])
    norms = np.linalg.norm(prototypes, axis=1, keepdims=True)
    coef = PROTOTYPE_SCALE * prototypes / np.where(norms > 0, norms, 1.0)
    if n_classes == 2:  # one decision, as scikit-learn's binary linear models
        return coef[1:] - coef[:1], np.zeros(1)
    return coef, np.zeros(n_classes)


def _group_labels(groups, y_index):
    """``(names, group_index, labels)``: the distinct groups, each row's group, each group's label (its last row's)."""
    names, group_index = np.unique(groups, return_inverse=True)
    labels = np.full(len(names), -1)
    labels[group_index] = y_index
    return names, group_index, labels


def _check_groups(groups, y_index):
    """``groups`` as an array, refused unless it has one entry per row and each group one label."""
    groups = np.asarray(groups)
    if groups.shape != y_index.shape:
        raise ValueError(f"groups must have one entry per row of X ({len(y_index)}), got shape {groups.shape}")
    names, group_index, labels = _group_labels(groups, y_index)
    if np.any(labels[group_index] != y_index):
        mixed = names[np.flatnonzero(np.bincount(group_index, weights=labels[group_index] != y_index))[0]]
        raise ValueError(f"groups: the rows of group {mixed.tolist()!r} have different labels; a group is one image")
    return groups


def _group_means(X, y_index, sample_weight, groups):
    """``(X, y_index, sample_weight, groups)`` with the rows of each group replaced by their weighted mean.

    The mean stands for the image in the cross-validation, weighted by its
    rows' total weight (so the loss, and the meaning of ``C``, keep their
    scale): ``n_views + 1`` times fewer rows to fit. Unchanged without
    groups, or when every group is one row.
    """
    if groups is None:
        return X, y_index, sample_weight, None
    names, group_index, labels = _group_labels(groups, y_index)
    if len(names) == len(groups):
        return X, y_index, sample_weight, groups
    totals = np.bincount(group_index, weights=sample_weight, minlength=len(names))
    sums = np.zeros((len(names), X.shape[1]))
    np.add.at(sums, group_index, X * sample_weight[:, None])
    counts = np.bincount(group_index, minlength=len(names))
    plain = np.zeros_like(sums)
    np.add.at(plain, group_index, X)
    # A group of zero weight keeps its plain mean: it weighs nothing anyway.
    means = np.where(totals[:, None] > 0, sums / np.where(totals > 0, totals, 1)[:, None], plain / counts[:, None])
    return means, labels, totals, np.arange(len(names))


def _decision(Z, coef, intercept):
    scores = Z @ coef.T + intercept
    return scores.ravel() if coef.shape[0] == 1 else scores


def _predict_index(scores):
    return (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)


class FewShotLinearClassifier(ClassifierMixin, BaseEstimator):
    """A linear classifier on embeddings that fits the number of labelled images per class.

    The embeddings are power-normalised (the signed square root of each
    component), centred on the training mean and scaled to unit length,
    and a logistic regression with ``C=30`` is fitted to them: at
    one or two images (shots) per class the penalty dominates and the
    weights lie along the class prototypes (unit-norm class means); with
    more shots the data terms take over. ``C`` was chosen on a 100-class
    development set (a CUB-200-2011 subset, 1 to 5 shots), not on the
    data sets the library's targets are measured on, and so was ``power``;
    the embeddings' length
    is fixed, so ``C`` carries over between backbones. The user guide gives
    the figures.

    ``strategy="auto"`` instead chooses, by internal cross-validation on
    the training data, between the prototypes and a logistic regression at
    each ``C`` of ``Cs`` (prototypes at one shot, where nothing can be
    cross-validated), and refits the winner on all of it; ties go to the
    prototypes, then to stronger regularisation.

    Parameters
    ----------
    strategy : {"logistic", "auto", "prototype"}, default="logistic"
        ``"logistic"``: a logistic regression, its ``C`` chosen by
        cross-validation when ``Cs`` has several values (which needs at
        least two shots per class). ``"auto"``: the cross-validated choice
        above. ``"prototype"``: always the nearest class prototype (cosine
        similarity).
    Cs : float or array-like of float, default=30.0
        Inverse regularisation strength of the logistic regression, or the
        values cross-validation chooses from (on unit-length embeddings:
        larger than for raw ones), for example
        ``(0.1, 1.0, 10.0, 100.0, 1000.0)``.
    cv : int, cross-validation generator or iterable, default=3
        An int: most folds of the internal stratified (grouped, given
        ``groups``) cross-validation, fewer when a class has fewer shots
        (two shots: leave one shot out per class). Otherwise the folds, as
        for :func:`sklearn.model_selection.check_cv`.
    max_iter : int, default=1000
        Iterations of the logistic regression's lbfgs solver.
    power : float, default=0.5
        Exponent of the power normalisation applied to every component
        first, ``sign(x) * |x| ** power``; ``1`` turns it off. Values below
        1 shrink the large activations toward the small ones.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen at fit.
    mean_ : ndarray of shape (n_features,)
        Training mean (weighted by ``sample_weight``) of the
        power-normalised embeddings, subtracted from every one.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Weights on the power-normalised, centred, unit-length embeddings.
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Biases (zero for the prototypes).
    strategy_ : {"prototype", "logistic"}
        The model chosen.
    C_ : float or None
        The logistic regression's ``C``; None for the prototypes.
    n_shots_ : int
        Fewest shots of a class: training rows, or distinct ``groups``
        when given.
    n_iter_ : int
        Iterations of the solver for the refitted logistic regression; 1
        for the prototypes (one pass, in closed form).
    cv_scores_ : dict
        Mean cross-validated accuracy of each candidate (``"prototype"``
        and each ``C``); empty when nothing was cross-validated.
    n_features_in_ : int
        Length of the embeddings.

    See Also
    --------
    sktransfer.FrozenFeatureClassifier : uses this classifier by default,
        with the views of an image kept in one fold.

    Notes
    -----
    ``fit`` takes ``groups``: rows of one group (the augmented views of one
    image) count as one shot and stay in one fold, so that the
    cross-validation scores unseen images, not other views of seen ones.
    The cross-validation then fits each candidate on one row per image,
    the weighted mean of its rows (weighted by their total weight, so that
    ``C`` means the same): ``n_views + 1`` times fewer rows. The chosen
    model is refitted on every row.
    Probabilities are the softmax of the decision function (a sigmoid for
    two classes); for the prototypes that is the cosine similarity times
    ``PROTOTYPE_SCALE`` (10), a fixed temperature.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.feature_extraction import FewShotLinearClassifier
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 16))
    >>> X = np.repeat(centres, 4, axis=0) + 0.3 * rng.normal(size=(12, 16))
    >>> y = np.repeat([0, 1, 2], 4)
    >>> clf = FewShotLinearClassifier().fit(X, y)
    >>> clf.n_shots_, clf.predict(centres).tolist()
    (4, [0, 1, 2])
    >>> clf.strategy_, clf.C_
    ('logistic', 30.0)
    >>> FewShotLinearClassifier(strategy="auto").fit(X[::4], y[::4]).strategy_
    'prototype'
    """

    _parameter_constraints = {
        "strategy": [StrOptions({"auto", "prototype", "logistic"})],
        "Cs": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "cv": [Interval(Integral, 2, None, closed="left"), "cv_object"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "power": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        strategy: Literal["logistic", "auto", "prototype"] = "logistic",
        Cs: float | ArrayLike = 30.0,
        cv: int = 3,
        max_iter: int = 1000,
        power: float = 0.5,
    ) -> None:
        self.strategy = strategy
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.power = power

    def _check_Cs(self):
        Cs = np.sort(np.atleast_1d(np.asarray(self.Cs, dtype=float)))
        if Cs.ndim != 1 or len(Cs) == 0 or not np.all(np.isfinite(Cs)) or np.any(Cs <= 0):
            raise ValueError(f"Cs must be one positive number or a non-empty list of them, got {self.Cs!r}")
        return Cs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None, groups: ArrayLike | None = None
    ) -> FewShotLinearClassifier:
        """Choose and fit the head on embeddings ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.
        y : array-like of shape (n_samples,)
            Labels (at least two classes).
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the rows, in the prototypes' means, the logistic
            regression's loss and the cross-validated accuracy.
        groups : array-like of shape (n_samples,) or None, default=None
            Rows of one group are one shot (views of one image): counted
            once, kept in one fold.

        Returns
        -------
        self
        """
        Cs = self._check_Cs()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64)
        X = _signed_power(X, self.power)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has one class only ({self.classes_[0]!r}); a classifier needs at least two")
        sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if groups is not None:
            groups = _check_groups(groups, y_index)
        self.n_shots_ = self._fewest_shots(y_index, groups)
        candidates = self._candidates(Cs)
        self.cv_scores_ = {}
        if len(candidates) > 1:
            self.cv_scores_ = self._cross_validate(*_group_means(X, y_index, sample_weight, groups), candidates)
            best = max(self.cv_scores_.values())
            choice = next(c for c in candidates if self.cv_scores_[c] == best)  # ties: earliest
        else:
            choice = candidates[0]
        self.mean_ = np.average(X, axis=0, weights=sample_weight)
        Z = _centre_normalise(X, self.mean_)
        self.strategy_ = "prototype" if choice == "prototype" else "logistic"
        self.C_ = None if choice == "prototype" else float(choice)
        model = None if choice == "prototype" else LogisticRegression(max_iter=self.max_iter)
        self.coef_, self.intercept_ = self._fit_candidate(choice, Z, y_index, sample_weight, model)
        self.n_iter_ = 1 if model is None else int(np.max(model.n_iter_))
        return self

    def _fewest_shots(self, y_index, groups):
        if groups is None:
            return int(np.bincount(y_index).min())
        return min(len(np.unique(groups[y_index == k])) for k in range(len(self.classes_)))

    def _candidates(self, Cs):
        """The models cross-validation chooses from, in order of preference on a tie."""
        if self.strategy == "prototype" or (self.strategy == "auto" and self.n_shots_ < 2):
            return ["prototype"]
        if self.strategy == "logistic" and len(Cs) > 1 and self.n_shots_ < 2:
            raise ValueError(
                f"strategy='logistic' with {len(Cs)} values of Cs chooses C by cross-validation, which needs "
                "at least 2 shots of every class; a class of y has 1. Give one C, or strategy='auto'"
            )
        logistic = [float(C) for C in Cs]
        return logistic if self.strategy == "logistic" else ["prototype", *logistic]

    def _fit_candidate(self, choice, Z, y_index, sample_weight, model):
        """``(coef, intercept)`` of one candidate; ``model`` is the LogisticRegression to fit.

        A ``model`` with ``warm_start=True`` continues from its previous fit.
        """
        if choice == "prototype":
            return _prototype_weights(Z, y_index, len(self.classes_), sample_weight)
        model.set_params(C=choice).fit(Z, y_index, sample_weight=sample_weight)
        return model.coef_.copy(), model.intercept_.copy()

    def _cross_validate(self, X, y_index, sample_weight, groups, candidates):
        """Mean weighted accuracy of each candidate over stratified (grouped) folds."""
        if isinstance(self.cv, Integral):
            n_splits = min(self.cv, self.n_shots_)
            if groups is None or len(np.unique(groups)) == len(groups):
                splits = list(StratifiedKFold(n_splits).split(X, y_index))
            else:
                splits = list(StratifiedGroupKFold(n_splits).split(X, y_index, groups))
        else:
            splits = list(check_cv(self.cv, y_index, classifier=True).split(X, y_index, groups))
        n_splits = len(splits)
        totals = dict.fromkeys(candidates, 0.0)
        for train, test in splits:
            weight_train, weight_test = sample_weight[train], sample_weight[test]
            if not (np.any(weight_train > 0) and np.any(weight_test > 0)):
                continue  # a fold of zero weights has nothing to fit or to score
            mean = np.average(X[train], axis=0, weights=weight_train)
            Z_train, Z_test = _centre_normalise(X[train], mean), _centre_normalise(X[test], mean)
            # One model per fold, warm-started along increasing C: each fit
            # starts from the previous, more regularised, solution.
            warm = LogisticRegression(max_iter=self.max_iter, warm_start=True)
            for choice in candidates:
                coef, intercept = self._fit_candidate(choice, Z_train, y_index[train], weight_train, warm)
                hit = _predict_index(_decision(Z_test, coef, intercept)) == y_index[test]
                totals[choice] += float(np.average(hit, weights=weight_test)) / n_splits
        return totals

    # ------------------------------------------------------------- predict

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Scores of the classes (of the second class, for two).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return _decision(_centre_normalise(_signed_power(X, self.power), self.mean_), self.coef_, self.intercept_)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most likely class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        return self.classes_[_predict_index(scores)]

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities: the softmax of the decision function (a sigmoid for two classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = expit(scores)
            return np.column_stack([1 - positive, positive])
        return softmax(scores, axis=1)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.log(self.predict_proba(X))

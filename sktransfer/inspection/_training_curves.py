"""Fine-tuning learning curves from a skorch ``history``.

Training and validation loss per epoch, validation accuracy on a second
axis, and a line where phase 2 (unfrozen backbone groups) begins: where the
head-only phase ends is where a jump or a divergence usually starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._matplotlib import figure_and_axes

_HISTORIES = ("auto", "fit", "validation")


def _column(rows: list[Mapping], key: str) -> np.ndarray | None:
    """The `key` of every row as floats, None when no row has it."""
    values = [row.get(key) for row in rows]
    if all(value is None for value in values):
        return None
    return np.array([np.nan if value is None else float(value) for value in values])


class TrainingCurvesDisplay:
    """Loss and accuracy per epoch of a fine-tuning run, with the phase switch.

    Build it with :meth:`from_estimator` (a fitted
    :class:`~sktransfer.FineTuneClassifier`) or :meth:`from_history` (any
    skorch ``History`` or list of per-epoch dicts).

    Parameters
    ----------
    epochs : numpy.ndarray of shape (n_epochs,)
        The epoch numbers.
    train_loss : numpy.ndarray of shape (n_epochs,)
        The mean training loss of each epoch.
    valid_loss : numpy.ndarray of shape (n_epochs,) or None, default=None
        The validation loss, when a validation split was held out.
    valid_acc : numpy.ndarray of shape (n_epochs,) or None, default=None
        The validation accuracy.
    phase : numpy.ndarray of shape (n_epochs,) or None, default=None
        Each epoch's training phase (1: head only, 2: unfrozen groups too).

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    ax_ : matplotlib.axes.Axes
        The axes of the losses.
    accuracy_ax_ : matplotlib.axes.Axes or None
        The twin axes of the validation accuracy (None without it).
    lines_ : dict of str to matplotlib.lines.Line2D
        The drawn curves by name (``"train_loss"``, ``"valid_loss"``,
        ``"valid_acc"``).
    phase_switch_ : matplotlib.lines.Line2D or None
        The vertical line where phase 2 begins (None when the run has one phase).

    See Also
    --------
    sktransfer.FineTuneClassifier : Its ``history`` is what this display draws.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer.inspection import TrainingCurvesDisplay
    >>> history = [
    ...     {"epoch": 1, "phase": 1, "train_loss": 0.9, "valid_loss": 0.8, "valid_acc": 0.6},
    ...     {"epoch": 2, "phase": 2, "train_loss": 0.5, "valid_loss": 0.6, "valid_acc": 0.8},
    ...     {"epoch": 3, "phase": 2, "train_loss": 0.3, "valid_loss": 0.5, "valid_acc": 0.9},
    ... ]
    >>> display = TrainingCurvesDisplay.from_history(history)
    >>> sorted(display.lines_)
    ['train_loss', 'valid_acc', 'valid_loss']
    >>> display.phase_switch_.get_xdata()[0]
    np.float64(1.5)
    """

    def __init__(
        self,
        epochs: np.ndarray,
        train_loss: np.ndarray,
        valid_loss: np.ndarray | None = None,
        valid_acc: np.ndarray | None = None,
        phase: np.ndarray | None = None,
    ) -> None:
        self.epochs = epochs
        self.train_loss = train_loss
        self.valid_loss = valid_loss
        self.valid_acc = valid_acc
        self.phase = phase

    def plot(self, *, ax: Any = None) -> TrainingCurvesDisplay:
        """Draw the loss curves, the accuracy on a twin axis and the phase switch.

        Parameters
        ----------
        ax : matplotlib.axes.Axes or None, default=None
            The axes of the losses; a new figure when None.

        Returns
        -------
        self : TrainingCurvesDisplay
            With ``figure_``, ``ax_``, ``accuracy_ax_``, ``lines_`` and
            ``phase_switch_`` set.
        """
        figure, ax = figure_and_axes(ax, type(self).__name__, figsize=(6, 4))
        marker = "o" if len(self.epochs) <= 30 else None
        self.lines_ = {"train_loss": ax.plot(self.epochs, self.train_loss, marker=marker, label="train loss")[0]}
        if self.valid_loss is not None:
            self.lines_["valid_loss"] = ax.plot(self.epochs, self.valid_loss, marker=marker, label="valid loss")[0]
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles = list(self.lines_.values())
        self.accuracy_ax_ = None
        if self.valid_acc is not None:
            self.accuracy_ax_ = ax.twinx()
            (line,) = self.accuracy_ax_.plot(
                self.epochs, self.valid_acc, marker=marker, color="tab:green", linestyle="--", label="valid accuracy"
            )
            self.accuracy_ax_.set_ylabel("accuracy")
            self.lines_["valid_acc"] = line
            handles.append(line)
        self.phase_switch_ = None
        if self.phase is not None:
            switches = np.flatnonzero(np.diff(self.phase) != 0)
            if len(switches):
                at = (self.epochs[switches[0]] + self.epochs[switches[0] + 1]) / 2
                self.phase_switch_ = ax.axvline(at, color="grey", linestyle=":", label="backbone unfrozen")
                handles.append(self.phase_switch_)
        ax.legend(handles=handles, loc="best")
        self.figure_, self.ax_ = figure, ax
        return self

    @classmethod
    def from_estimator(cls, estimator: Any, *, history: str = "auto", ax: Any = None) -> TrainingCurvesDisplay:
        """Draw the learning curves of a fitted fine-tuner.

        Parameters
        ----------
        estimator : fitted FineTuneClassifier
            Or any fitted skorch net with a ``history``.
        history : {"auto", "fit", "validation"}, default="auto"
            Which run to draw. A fine-tuner that held out a validation split
            and then refit on all the data keeps the validated run in
            ``validation_history_`` and the refit (no validation curves) in
            ``history``: ``"auto"`` draws the validated run when there is
            one, ``"fit"`` always ``history``, ``"validation"`` always
            ``validation_history_``.
        ax : matplotlib.axes.Axes or None, default=None
            The axes of the losses; a new figure when None.

        Returns
        -------
        display : TrainingCurvesDisplay
        """
        if history not in _HISTORIES:
            raise ValueError(f"history must be one of {_HISTORIES}, got {history!r}")
        check_is_fitted(estimator)
        validated = getattr(estimator, "validation_history_", None)
        if history == "validation" and validated is None:
            raise ValueError(
                f"{type(estimator).__name__} has no validation_history_: it was not refit after a validated run; "
                'use history="fit"'
            )
        chosen = validated if history == "validation" or (history == "auto" and validated is not None) else None
        return cls.from_history(estimator.history if chosen is None else chosen, ax=ax)

    @classmethod
    def from_history(cls, history: Any, *, ax: Any = None) -> TrainingCurvesDisplay:
        """Draw the learning curves of a skorch ``History`` (or a list of per-epoch dicts).

        Parameters
        ----------
        history : skorch.history.History or list of dict
            One dict per epoch with ``train_loss``; ``epoch``, ``valid_loss``,
            ``valid_acc`` and ``phase`` are drawn when present.
        ax : matplotlib.axes.Axes or None, default=None
            The axes of the losses; a new figure when None.

        Returns
        -------
        display : TrainingCurvesDisplay
        """
        rows = list(history) if history is not None else []
        if not rows:
            raise ValueError("the history is empty: there are no epochs to draw (fit the estimator first)")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping):
                raise TypeError(f"history row {number} is a {type(row).__name__}, expected a dict per epoch")
            if row.get("train_loss") is None:
                raise ValueError(f"history row {number} has no 'train_loss': is this a training history?")
        epochs = _column(rows, "epoch")
        if epochs is None or np.isnan(epochs).any():
            epochs = np.arange(1, len(rows) + 1, dtype=float)
        phase = _column(rows, "phase")
        if phase is not None and np.isnan(phase).any():
            phase = None  # some epochs without a phase: no switch can be placed
        return cls(
            epochs,
            _column(rows, "train_loss"),
            valid_loss=_column(rows, "valid_loss"),
            valid_acc=_column(rows, "valid_acc"),
            phase=phase,
        ).plot(ax=ax)

"""The skorch callbacks that drive fine-tuning, and the default callback list.

* :class:`PhaseSwitch` moves from the head phase to the fine-tuning phase at
  epoch ``head_epochs`` (freezing, and caching what is frozen).
* :class:`CosineDecay` lowers every group's rate along a half cosine over the
  fine-tuning phase, keeping their ratios.
* :func:`default_callbacks` puts them, validation accuracy and early stopping
  into skorch's default list (through skorch's public
  ``get_default_callbacks`` hook).
"""

from __future__ import annotations

import math
import time

import numpy as np
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, PrintLog

from ._display import EpochLog


def valid_accuracy(net, X, y) -> float:
    """Accuracy on the validation split, in class indices.

    The net's ``predict`` maps to the original labels; the validation dataset
    holds encoded ones, so compare indices.
    """
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


def default_callbacks(skorch_defaults: list, *, early_stopping_patience: int | None) -> list:
    """skorch's defaults plus the phase and schedule callbacks, validation accuracy and early stopping.

    Parameters
    ----------
    skorch_defaults : list of (name, callback)
        What skorch's ``get_default_callbacks`` returns; the last one prints
        the log and stays last.
    early_stopping_patience : int or None
        None: no early stopping (no validation split, or ``patience=None``).

    Returns
    -------
    list of (name, callback)
    """
    callbacks = [(name, cb) for name, cb in skorch_defaults if name != "valid_acc"]
    callbacks.insert(0, ("phase_switch", PhaseSwitch()))
    callbacks.insert(1, ("lr_schedule", CosineDecay()))
    extra = [("valid_acc", EpochScoring(valid_accuracy, name="valid_acc", lower_is_better=False))]
    if early_stopping_patience is not None:
        extra.append(
            ("early_stopping", EarlyStopping(monitor="valid_loss", patience=early_stopping_patience, load_best=True))
        )
    name, printer = callbacks[-1]
    if name == "print_log" and type(printer) is PrintLog:
        # Plain text when piped, and the same columns every epoch.
        printer = EpochLog()
    return callbacks[:-1] + extra + [(name, printer)]


class PhaseSwitch(Callback):
    """Switch from the head phase to fine-tuning at epoch ``net.head_epochs``.

    The phase follows from the number of epochs in ``net.history``, so a
    resumed or ``warm_start`` fit continues in the phase it stopped in. Each
    epoch records ``phase`` (1 or 2) and, when activations were (re)cached at
    its start, ``cache_dur`` (seconds) in the history.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs) -> None:
        self.phase_ = None

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs) -> None:
        epochs_done = len(net.history) - 1
        phase = 1 if epochs_done < net.head_epochs else 2
        if phase != self.phase_:
            t0 = time.perf_counter()
            net.enter_phase(phase, [dataset_train, dataset_valid])
            net.history.record("cache_dur", time.perf_counter() - t0)
            self.phase_ = phase
        net.history.record("phase", phase)

    def on_train_end(self, net, X=None, y=None, **kwargs) -> None:
        net.leave_training()
        self.phase_ = None


class CosineDecay(Callback):
    """Decay the learning rates along a half cosine over the fine-tuning phase.

    Every param group's rate is its ``param_groups`` value times
    ``(1 + cos(pi * t)) / 2``, where ``t`` goes from 0 at the first batch of
    phase 2 to 1 at the end of the run, batch by batch; phase 1 runs at the
    full rates. The run is the ``max_epochs`` epochs that ``fit`` (or each
    ``partial_fit`` or ``warm_start`` call) starts, so a run cut short (early
    stopping, or ``fit_loop(epochs=k)`` with ``k < max_epochs``) has followed
    exactly the first ``k`` epochs of the full schedule.

    Decaying the rate to zero lets the last epochs settle instead of jumping
    around a minimum (Loshchilov & Hutter, "SGDR", ICLR 2017); with a handful
    of epochs on a few hundred images that is what a user would otherwise
    tune by hand.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs) -> None:
        self.first_epoch_ = len(net.history)
        self.end_epoch_ = self.first_epoch_ + net.max_epochs

    def on_epoch_begin(self, net, dataset_train=None, **kwargs) -> None:
        self.epoch_ = len(net.history) - 1
        n_batches = len(net.get_iterator(dataset_train, training=True)) if dataset_train is not None else 0
        self.n_batches_ = max(1, n_batches)
        self.batch_ = 0

    def on_batch_begin(self, net, batch=None, training: bool = False, **kwargs) -> None:
        if not training or net.lr_schedule != "cosine":
            return
        net.apply_learning_rates(scale=self.scale(net.head_epochs))
        self.batch_ += 1

    def scale(self, head_epochs: int) -> float:
        """The factor on the rates for the current batch."""
        start = max(self.first_epoch_, head_epochs)
        if self.epoch_ < start or self.end_epoch_ <= start:
            return 1.0
        progress = (self.epoch_ - start + min(self.batch_ / self.n_batches_, 1.0)) / (self.end_epoch_ - start)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def on_train_end(self, net, X=None, y=None, **kwargs) -> None:
        # Leave the optimizer at the configured rates (a later warm start
        # starts its own schedule from there).
        net.apply_learning_rates()

"""The validated run: the validation split, interruption, and the refit on all data.

* By default (``train_split=None``) a fit trains on every image for
  ``max_epochs`` epochs. A ``train_split`` the user passes (skorch's
  ``ValidSplit``) holds out a validation split: early stopping on its loss.
* An interrupted run (KeyboardInterrupt) keeps what it trained, as skorch
  does, and says so (``interrupted_`` and a warning); an interrupted refit
  restores the validated run's model, so no refit is ever reported that did
  not happen.
* The refit trains again from the pretrained weights on all the data for the
  validated run's best number of epochs, as scikit-learn's searches refit.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from torch.utils.data import Subset

from ._datasets import TrainingDataset


class ValidationMixin:
    """The validation split, interruption and refit of a fine-tuning skorch net.

    The host provides ``_train(dataset, y_encoded, **fit_params)`` (one
    training run) and the parameters ``train_split``, ``patience``,
    ``max_epochs`` and ``random_state``.
    """

    def get_split_datasets(self, X, y=None, **fit_params):
        if not self._holds_out_validation():
            return self._view(self.get_dataset(X, y), train=True), None
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        return self._view(dataset_train, train=True), self._view(dataset_valid, train=False)

    @staticmethod
    def _view(dataset, train):
        if isinstance(dataset, TrainingDataset):
            return dataset.view(np.arange(len(dataset)), train)
        if isinstance(dataset, Subset) and isinstance(dataset.dataset, TrainingDataset):
            return dataset.dataset.view(dataset.indices, train)
        return dataset

    def _holds_out_validation(self):
        return self.train_split is not None and getattr(self, "validating_", True)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            # skorch's partial_fit swallows it (the run keeps what it
            # trained); remember it so that no refit is reported.
            self.interrupted_ = True
            raise

    def _warn_interrupted(self, what, outcome="the model keeps what it trained"):
        warnings.warn(
            f"{type(self).__name__}: {what} was interrupted after {len(self.history)} epoch(s); "
            f"{outcome} (interrupted_=True, no refit reported)",
            UserWarning,
            stacklevel=3,
        )

    def _refit_on_all(self, dataset, y_encoded, **fit_params):
        """Train again from the pretrained weights on all data, for the best run's epochs.

        Like scikit-learn's ``refit``: the validation split chose the number
        of epochs (the best validation loss when early stopping is on, else
        every epoch run), and the images it held out now train too. The
        decoded images and the frozen prefix's activations are reused. An
        interrupted refit restores the validated run's model.
        """
        epochs = self._epochs_to_refit()
        if epochs is None:
            return
        validated = copy.deepcopy(
            {"history": self.history, "module": self.module_, "optimizer": self.optimizer_.state_dict()}
        )
        self.validating_ = False
        try:
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            self.initialize()
            self._train(dataset, y_encoded, epochs=epochs, **fit_params)
        finally:
            self.validating_ = True
            self.initialize_callbacks()
        if self.interrupted_:
            self._warn_interrupted("the refit", "the model is the validated run's, trained without the held-out split")
            self.history, self.module_ = validated["history"], validated["module"]
            self.initialize_optimizer()
            self.optimizer_.load_state_dict(validated["optimizer"])
            return
        self.validation_history_, self.best_epoch_ = validated["history"], epochs

    def _epochs_to_refit(self):
        """Epochs the validated run recommends, or None when nothing was validated."""
        losses = [row.get("valid_loss") for row in self.history]
        if not losses or any(loss is None for loss in losses):
            return None
        if self.patience is None:
            return len(losses)
        return int(np.argmin(losses)) + 1

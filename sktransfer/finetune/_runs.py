"""Training runs of the fine-tuner: seeding, the validation split, interruption, refit.

* :func:`local_rng`: a fit with ``random_state`` draws from torch's
  generators seeded with it, and gives the caller's states back afterwards.
* By default (``train_split=None``) a fit trains on every image for
  ``max_epochs`` epochs. A ``train_split`` the user passes (skorch's
  ``ValidSplit``) holds out a validation split: early stopping on its loss.
  :func:`training_view` turns skorch's split into views of the decoded
  images (augmented for training, evaluation crops for validation).
* An interrupted run (KeyboardInterrupt) keeps what it trained, as skorch
  does, and says so (:func:`warn_interrupted`); an interrupted refit
  restores the validated run's model (:class:`RunSnapshot`), so no refit is
  ever reported that did not happen.
* The refit trains again from the pretrained weights on all the data for
  the validated run's best number of epochs (:func:`epochs_to_refit`), as
  scikit-learn's searches refit.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ._datasets import TrainingDataset

__all__ = ["RunSnapshot", "epochs_to_refit", "local_rng", "training_view", "warn_interrupted"]


@contextmanager
def local_rng(random_state: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's generators with ``random_state`` within, restoring the caller's state after.

    The generator of ``device`` is forked too when it is a GPU. None: no
    seeding, nothing restored.
    """
    if random_state is None:
        yield
        return
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.manual_seed(random_state)
        yield


def training_view(dataset: Dataset, train: bool) -> Dataset:
    """``dataset`` (a :class:`TrainingDataset` or skorch's ``Subset`` of one) as a view for training or validation.

    Training views serve augmented crops (or cached activations), validation
    views evaluation crops; any other dataset is returned as it is.
    """
    if isinstance(dataset, TrainingDataset):
        return dataset.view(np.arange(len(dataset)), train)
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TrainingDataset):
        return dataset.dataset.view(dataset.indices, train)
    return dataset


def epochs_to_refit(history, patience: int | None) -> int | None:
    """Epochs the validated run recommends, or None when nothing was validated.

    The epoch of the lowest validation loss when early stopping was on
    (``patience`` not None), else every epoch run.
    """
    losses = [row.get("valid_loss") for row in history]
    if not losses or any(loss is None for loss in losses):
        return None
    if patience is None:
        return len(losses)
    return int(np.argmin(losses)) + 1


class RunSnapshot:
    """A deep copy of a run's history, network and optimizer state, to restore after a failed refit.

    Parameters
    ----------
    history : skorch History
    module : torch.nn.Module
    optimizer : torch.optim.Optimizer
    """

    def __init__(self, history, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        saved = copy.deepcopy({"history": history, "module": module, "optimizer": optimizer.state_dict()})
        self.history, self.module, self.optimizer_state = saved["history"], saved["module"], saved["optimizer"]


def warn_interrupted(owner: str, what: str, epochs: int, outcome: str = "the model keeps what it trained") -> None:
    """Say that ``what`` (a run of ``owner``) was interrupted after ``epochs`` epochs, and what the model is."""
    warnings.warn(
        f"{owner}: {what} was interrupted after {epochs} epoch(s); {outcome} (interrupted_=True, no refit reported)",
        UserWarning,
        stacklevel=3,
    )

"""FineTuneClassifier: fine-tune a pretrained backbone, scikit-learn style.

The classic recipe as one estimator: (1) freeze the pretrained base, (2)
train a new head on it, (3) unfreeze the last layer groups, (4) train them
with the head at a low learning rate, (5) earlier groups slower than later
ones. It is a skorch ``NeuralNetClassifier``, so callbacks, ``history``,
``train_split``, ``optimizer__*``, ``warm_start`` and ``save_params`` work as
skorch users expect.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import column_or_1d
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.dataset import ValidSplit, unpack_data
from skorch.utils import is_dataset, to_device
from torch import nn
from torch.utils.data import Subset

from ..image._validation import ImageInputMixin
from ..utils._device import resolve_device
from ._data import (
    ActivationCache,
    LightAugment,
    PredictionDataset,
    TrainingDataset,
    decode_training_images,
    paths_key,
)
from ._labels import LabelEncodingMixin
from ._schedule import (
    HEAD,
    CosineDecay,
    FineTuneNetwork,
    PhaseSwitch,
    fit_linear_probe,
    param_groups,
    resolve_unfreeze,
    set_trainable,
    suffix_start,
)
from ..image._batch_decoder import BatchDecoder, resolve_num_workers
from ..backbones._weights import weights_identity
from ..backbones import OFFLINE_BACKBONE, get_backbone

__all__ = ["FineTuneClassifier"]


# skorch's own default: the first of 5 stratified folds is the validation set.
_DEFAULT_TRAIN_SPLIT = ValidSplit(5, stratified=True)


def _valid_accuracy(net, X, y):
    # The nets's predict maps to the original labels; the validation
    # dataset holds encoded ones, so compare indices.
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


def _set_group_lrs(net, key, value):
    setattr(net, key, value)
    net.apply_learning_rates()


class FineTuneClassifier(ImageInputMixin, LabelEncodingMixin, NeuralNetClassifier):
    """Fine-tune a pretrained image network: head first, then the last layer groups.

    Training runs in two phases. In phase 1 (``head_epochs`` epochs) the
    whole pretrained network is frozen and only a new linear head trains. In
    phase 2 the last ``unfreeze`` layer groups of the backbone train too,
    each earlier group ``lr_decay`` times slower than the next (differential
    learning rates), their rates decaying along a half cosine to zero.

    By default the new head starts as the logistic regression of the frozen
    embeddings (so phase 1 needs no epochs), 20% of the training data
    (stratified) is held out to choose the number of epochs (early stopping
    on the validation loss), and the network is then trained again from the
    pretrained weights on all the data for that many epochs (``refit``).

    Without augmentation, the frozen part of the network computes the same
    thing every epoch, so its output is computed once per phase and only the
    trainable rest runs each epoch (frozen-prefix caching); the weights are
    the same as without caching.

    Parameters
    ----------
    model : str, Backbone or torch.nn.Module, default="efficientnet_lite0"
        The backbone, as for :func:`sktransfer.backbones.get_backbone`. A
        module passed here is copied at each fit, never trained in place.
    weights : str, path or None, default="DEFAULT"
        Pretrained weights; None for random initialisation.
    unfreeze : int or "all", default=3
        How many of the last layer groups train in phase 2 (0: the head only).
    lr : float, default=2e-4
        Learning rate of the head (low: the head starts fitted, see
        ``head_init``).
    lr_decay : float in (0, 1], default=0.3
        Layer group k from the end (k=1 for the last) learns at
        ``lr * lr_decay**k``; 1.0 gives one rate everywhere.
    head_epochs : int, default=0
        Epochs of phase 1, before unfreezing. With ``head_init="probe"`` the
        head is already fitted to the frozen embeddings before the first
        epoch, so phase 1 can be skipped; with ``"random"`` give it a few.
    head_init : {"probe", "random"}, default="probe"
        How the new head starts. ``"probe"``: fitted to convergence as an
        L2-penalised logistic regression (scikit-learn's default ``C=1``) on
        the frozen embeddings of the training split, by L-BFGS, before phase
        1 -- "linear probing, then fine-tuning" (LP-FT), which Kumar et al.
        (ICLR 2022) found to distort the pretrained features less than
        fine-tuning from a random head. ``"random"``: PyTorch's default
        initialisation, trained by the optimizer alone.
    max_epochs : int, default=5
        Total epochs, both phases.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: in phase 2 every group's rate falls along a half cosine
        from its value to zero at ``max_epochs``, batch by batch (ratios
        between groups kept); phase 1 runs at constant rates.
    refit : bool, default=True
        After a validated run (``train_split`` not None), train again from
        the pretrained weights on all the data for the run's best number of
        epochs (the lowest validation loss; every epoch when ``patience`` is
        None), as scikit-learn's searches refit. The decoded images and
        cached activations are reused. False keeps the validated run's best
        weights, trained on 80% of the data.
    augment : None, "light" or callable, default=None
        Training augmentation. ``"light"``: random resized crop (35-100% of
        the area) and horizontal flip. A callable receives the RGB PIL image
        resized to the backbone's ``resize_size`` on its shorter side and
        returns a PIL image (centre-cropped to the crop size if needed) or a
        uint8 tensor of the crop size. Prediction always uses the backbone's
        own resize and centre crop.
    batchnorm : {"frozen", "train"}, default="frozen"
        ``"frozen"``: frozen layer groups run in eval mode (BatchNorm uses and
        keeps its pretrained statistics). ``"train"``: they run in train mode
        and their BatchNorm statistics adapt to the data (no caching then).
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss, as in scikit-learn.
    random_state : int or None, default=None
        Seeds torch's global generator at the start of ``fit`` (weights of
        the head, shuffling, dropout, augmentation).
    device : str or torch.device, default="auto"
        ``"auto"`` picks cuda, then mps, then cpu.
    dtype : {"float32", "float16", "bfloat16"}, default="float32"
        Mixed precision: the network's forward pass runs under
        ``torch.autocast`` with this dtype (weights, optimizer state, loss
        and outputs stay float32). ``"float16"`` also scales the loss
        (``torch.amp.GradScaler``) so small gradients do not underflow.
        Meant for GPUs; on a CPU, bfloat16 runs but is rarely faster.
    batch_size : int, default=32
    patience : int or None, default=5
        Early stopping: epochs without improvement of the validation loss
        before stopping; the best epoch's weights are restored (and its
        number of epochs is what ``refit`` trains for). None disables it (as
        does ``train_split=None``).
    cache_activations : bool, default=True
        Use frozen-prefix caching when possible (``augment=None`` and
        ``batchnorm="frozen"``).
    image_shape : "auto" or tuple, default="auto"
        Layout of the rows when X is a 2-D numeric table of flattened images.
    num_workers : int or "auto", default="auto"
        Threads decoding the training images.
    **kwargs
        Any other skorch ``NeuralNetClassifier`` parameter: ``criterion``
        (default ``CrossEntropyLoss``), ``optimizer`` (default ``AdamW``),
        ``train_split`` (default ``ValidSplit(5, stratified=True)``),
        ``callbacks``, ``warm_start``, ``verbose``, ``optimizer__*``,
        ``iterator_train__*``, ``module__dropout`` (head dropout, 0.2)...

    Attributes
    ----------
    classes_ : ndarray
        The class labels.
    module_ : FineTuneNetwork
        The network: ``module_.backbone`` and the new ``module_.head``.
    n_unfrozen_groups_ : int
        ``unfreeze`` resolved against the backbone.
    history : skorch History
        Per epoch: losses, ``valid_acc``, ``phase``, ``dur``, and
        ``cache_dur`` where activations were cached. After a refit, the
        refit's epochs (training losses only).
    validation_history_ : skorch History or None
        The validated run's history when the model was refit, else None.
    best_epoch_ : int or None
        The number of epochs the refit trained for (None without refit).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FineTuneClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> y = ["cat", "dog"] * 4
    >>> clf = FineTuneClassifier(model="tiny_convnet", weights=None, max_epochs=2,
    ...                          head_epochs=1, train_split=None, verbose=0,
    ...                          random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape, clf.classes_.tolist()
    ((8, 2), ['cat', 'dog'])
    """

    _parameter_constraints: ClassVar[dict] = {
        "model": [str, nn.Module],
        "weights": [str, os.PathLike, None],
        "unfreeze": [Interval(Integral, 0, None, closed="left"), StrOptions({"all"})],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
        "head_epochs": [Interval(Integral, 0, None, closed="left")],
        "lr_schedule": [StrOptions({"cosine", "constant"})],
        "refit": ["boolean"],
        "head_init": [StrOptions({"probe", "random"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "augment": [None, StrOptions({"light"}), callable],
        "batchnorm": [StrOptions({"frozen", "train"})],
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float32", "float16", "bfloat16"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "cache_activations": ["boolean"],
        "num_workers": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(
        self,
        *,
        model=OFFLINE_BACKBONE,
        weights="DEFAULT",
        unfreeze=3,
        lr=2e-4,
        lr_decay=0.3,
        head_epochs=0,
        head_init="probe",
        max_epochs=5,
        lr_schedule="cosine",
        refit=True,
        augment=None,
        batchnorm="frozen",
        class_weight=None,
        random_state=None,
        device="auto",
        dtype="float32",
        batch_size=32,
        patience=5,
        cache_activations=True,
        image_shape="auto",
        num_workers="auto",
        module=FineTuneNetwork,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        train_split=_DEFAULT_TRAIN_SPLIT,
        **kwargs,
    ):
        # Set before skorch's __init__: afterwards skorch refuses to store an
        # nn.Module (model=) as a plain attribute.
        self.model = model
        self.weights = weights
        self.unfreeze = unfreeze
        self.lr_decay = lr_decay
        self.head_epochs = head_epochs
        self.head_init = head_init
        self.lr_schedule = lr_schedule
        self.refit = refit
        self.augment = augment
        self.batchnorm = batchnorm
        self.class_weight = class_weight
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.cache_activations = cache_activations
        self.image_shape = image_shape
        self.num_workers = num_workers
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            **kwargs,
        )

    # ----------------------------------------------------------------- set-up

    def _validate_own_params(self):
        params = {key: getattr(self, key) for key in self._parameter_constraints}
        validate_parameter_constraints(self._parameter_constraints, params, caller_name=type(self).__name__)

    @contextmanager
    def _resolved_device(self):
        """Run with ``self.device`` set to a real device when it is ``"auto"``."""
        requested = self.device
        if not (isinstance(requested, str) and requested == "auto"):
            yield
            return
        self.device = str(resolve_device("auto"))
        try:
            yield
        finally:
            self.device = requested

    @property
    def _default_callbacks(self):
        callbacks = [(name, cb) for name, cb in super()._default_callbacks if name != "valid_acc"]
        callbacks.insert(0, ("phase_switch", PhaseSwitch()))
        callbacks.insert(1, ("lr_schedule", CosineDecay()))
        # Insert validation accuracy and early stopping before print_log.
        extra = [("valid_acc", EpochScoring(_valid_accuracy, name="valid_acc", lower_is_better=False))]
        if self.patience is not None and self.train_split is not None:
            extra.append(
                ("early_stopping", EarlyStopping(monitor="valid_loss", patience=self.patience, load_best=True))
            )
        return callbacks[:-1] + extra + callbacks[-1:]

    def initialize(self):
        self._validate_own_params()
        with self._resolved_device():
            return super().initialize()

    def initialize_module(self):
        backbone = get_backbone(self.model, self.weights)
        if isinstance(self.model, nn.Module):
            # Never fine-tune the caller's module in place (refits, clones).
            backbone = copy.deepcopy(backbone)
        self.n_unfrozen_groups_ = resolve_unfreeze(self.unfreeze, backbone)
        kwargs = self.get_params_for("module")
        kwargs.setdefault("batchnorm", self.batchnorm)
        self.module_ = self.module(backbone, len(self.classes_), **kwargs)
        set_trainable(self.module_, 0)
        self._network_is_pretrained = True
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        weight = getattr(self, "class_weight_", None)
        if weight is not None and "weight" not in kwargs:
            kwargs["weight"] = torch.as_tensor(weight, dtype=torch.float32)
        self.criterion_ = self.criterion(**kwargs)
        return self

    def initialize_optimizer(self, triggered_directly=None):
        _, kwargs = self.get_params_for_optimizer("optimizer", self.module_.named_parameters())
        head_lr = kwargs.pop("lr")
        self.optimizer_ = self.optimizer(param_groups(self.module_, head_lr, self.lr_decay), **kwargs)
        self.grad_scaler_ = None
        if self.dtype == "float16":
            self.grad_scaler_ = torch.amp.GradScaler(torch.device(self.device).type)
        return self

    # ------------------------------------------------------- mixed precision

    def infer(self, x, **fit_params):
        if self.dtype == "float32":
            return super().infer(x, **fit_params)
        # The forward pass in reduced precision; the loss, the backward pass
        # and everything after the logits in float32.
        with torch.autocast(torch.device(self.device).type, dtype=getattr(torch, self.dtype)):
            y_pred = super().infer(x, **fit_params)
        return y_pred.float()

    def train_step_single(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        for name in self._optimizers:
            # True gradients for on_grad_computed callbacks (e.g. clipping).
            scaler.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        for name in self._optimizers:
            # Skips the step when a gradient overflowed, then adapts the scale.
            scaler.step(getattr(self, name + "_"))
        scaler.update()
        return None

    def get_params_for(self, prefix):
        params = super().get_params_for(prefix)
        if prefix == "iterator_train":
            # Shuffle training batches unless told otherwise (skorch does not).
            params.setdefault("shuffle", True)
        return params

    def _initialize_optimizer(self, reason=None):
        super()._initialize_optimizer(reason)
        # skorch's setter for ``lr`` gives every param group the same rate;
        # ours keeps the per-group decay (and makes lr_decay settable too).
        self._register_virtual_param(["lr", "lr_decay"], _set_group_lrs)
        return self

    def apply_learning_rates(self, scale=1.0):
        """Write ``lr`` and ``lr_decay`` (times ``scale``) into the optimizer's param groups."""
        wanted = {g["name"]: g["lr"] for g in param_groups(self.module_, self.lr * scale, self.lr_decay)}
        for group in self.optimizer_.param_groups:
            if group.get("name") in wanted:
                group["lr"] = wanted[group["name"]]

    # ------------------------------------------------------------------- data

    def check_data(self, X, y=None):
        # Classes are set from the original labels in fit/partial_fit; skorch's
        # version would overwrite them with the encoded ones.
        pass

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return X
        items = self._validate_images(X, reset=False)
        return PredictionDataset(items, self.module_.backbone.preprocessing)

    def get_split_datasets(self, X, y=None, **fit_params):
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        return self._view(dataset_train, train=True), self._view(dataset_valid, train=False)

    @staticmethod
    def _view(dataset, train):
        if isinstance(dataset, TrainingDataset):
            return dataset.view(np.arange(len(dataset)), train)
        if isinstance(dataset, Subset) and isinstance(dataset.dataset, TrainingDataset):
            return dataset.dataset.view(dataset.indices, train)
        return dataset

    def _augment_transform(self):
        if self.augment is None:
            return None
        if self.augment == "light":
            return LightAugment(self.module_.backbone.preprocessing.crop_size)
        return self.augment

    # ------------------------------------------------------------- training

    def fit(self, X, y, **fit_params):
        """Fit the head, then the last ``unfreeze`` layer groups.

        With a validation split (``train_split``, the default) the training
        run is validated and early-stopped; with ``refit=True`` the network
        then starts again from the pretrained weights and trains on all of
        ``X`` for the best run's number of epochs.

        Parameters
        ----------
        X : images
            Paths, PIL images, arrays, a pandas Series or one-column DataFrame,
            a 4-D array or tensor (see :func:`sktransfer.image._decode.check_images`).
        y : array-like of shape (n_samples,)
            Labels of any type.
        **fit_params
            Passed to skorch (e.g. to ``train_split``).

        Returns
        -------
        self
        """
        self._validate_own_params()
        fresh = not (self.warm_start and self.initialized_)
        if fresh:
            self.best_epoch_, self.validation_history_ = None, None
            items, y_encoded = self._checked_inputs(X, y, new_fit=True)
            self._seed()
        with self._resolved_device():
            if fresh:
                self.initialize()
            if is_dataset(X):
                return super().partial_fit(X, y, **fit_params)
            if not fresh:
                items, y_encoded = self._checked_inputs(X, y, new_fit=False)
            dataset = self._training_dataset(items, y_encoded)
            super().partial_fit(dataset, y_encoded, **fit_params)
            if fresh and self.refit:
                self._refit_on_all(dataset, y_encoded, **fit_params)
        return self

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training for ``max_epochs`` epochs (initialising if needed)."""
        with self._resolved_device():
            if is_dataset(X):
                return super().partial_fit(X, y, classes, **fit_params)
            new_fit = not self.initialized_
            items, y_encoded = self._checked_inputs(X, y, new_fit=new_fit)
            if new_fit:
                self.initialize()
            dataset = self._training_dataset(items, y_encoded)
            return super().partial_fit(dataset, y_encoded, classes, **fit_params)

    def _checked_inputs(self, X, y, *, new_fit):
        """The checked image items and the labels as class indices.

        A new fit (``new_fit=True``) also sets ``classes_`` and the class
        weights; otherwise labels must be among the known classes.
        """
        items = self._validate_images(X, reset=new_fit)
        return items, self._encode_labels(y, len(items), new_classes=new_fit)

    def _seed(self):
        if self.random_state is not None:
            torch.manual_seed(self.random_state)

    def _training_dataset(self, items, y_encoded):
        """The training images, decoded once, with their class indices."""
        images = decode_training_images(
            items,
            self.module_.backbone.preprocessing,
            augment=self._augment_transform(),
            num_workers=resolve_num_workers(self.num_workers),
            memo_key=self._memo_key(items),
        )
        return TrainingDataset(images, y_encoded)

    def _refit_on_all(self, dataset, y_encoded, **fit_params):
        """Train again from the pretrained weights on all data, for the best run's epochs.

        Like scikit-learn's ``refit``: the validation split chose the number
        of epochs (the best validation loss when early stopping is on, else
        every epoch run), and the images it held out now train too -- on a
        few hundred images, 20% more data is worth more than the check. The
        decoded images and the frozen prefix's activations are reused.
        """
        epochs = self._epochs_to_refit()
        if epochs is None:
            return
        validation_history = copy.deepcopy(self.history)  # initialize() empties it in place
        split = self.train_split
        self.train_split = None
        try:
            self._seed()
            self.initialize()
            super().partial_fit(dataset, y_encoded, epochs=epochs, **fit_params)
        finally:
            self.train_split = split
            self.initialize_callbacks()
        self.validation_history_, self.best_epoch_ = validation_history, epochs

    def _epochs_to_refit(self):
        """Epochs the validated run recommends, or None when nothing was validated."""
        losses = [row.get("valid_loss") for row in self.history]
        if not losses or any(loss is None for loss in losses):
            return None
        if self.patience is None:
            return len(losses)
        return int(np.argmin(losses)) + 1

    def _memo_key(self, items):
        """What other fits may share with this one (see ``FIT_MEMO``), or None.

        Only a network still holding its pretrained weights computes the same
        frozen-prefix activations as a fresh clone; named weights and image
        paths make that identity checkable.
        """
        if not getattr(self, "_network_is_pretrained", False):
            return None
        network = weights_identity(self.model, self.weights)
        images = paths_key(items)
        if network is None or images is None:
            return None
        return network, images

    def _can_cache(self):
        return self.cache_activations and self.augment is None and self.batchnorm == "frozen"

    def enter_phase(self, phase, datasets):
        """Freeze for ``phase`` (1: head only, 2: last groups too) and cache what is frozen.

        Called by the :class:`PhaseSwitch` callback. In phase 1 the cache
        also keeps the activations where phase 2 will enter, and derives the
        embedding from them, so the frozen prefix runs once per fit.
        """
        n_unfrozen = 0 if phase == 1 else self.n_unfrozen_groups_
        set_trainable(self.module_, n_unfrozen)
        stores = {id(d.images): d.images for d in datasets if isinstance(d, TrainingDataset)}
        start = suffix_start(self.module_, n_unfrozen)
        later = suffix_start(self.module_, self.n_unfrozen_groups_) if phase == 1 else None
        cached = bool(stores) and self._can_cache() and start is not None
        fill = {"device": self.device, "batch_size": max(self.batch_size, 64)}
        for store in stores.values():
            if not cached:
                break
            if later not in (None, start):
                store.cache.fill(self.module_, store, later, **fill)
            cached = store.cache.fill(self.module_, store, start, source=later, **fill)
        for store in stores.values():
            if not cached:
                store.cache.clear()
            store.cache.active = start if cached else None
        self.module_.input_start = start if cached else None
        if self.head_init == "probe" and len(self.history) == 1:  # first epoch of a fresh fit
            self._probe_head(datasets[0])

    @torch.no_grad()
    def _probe_head(self, train):
        """Fit the new head as a logistic regression on the frozen embeddings (LP-FT)."""
        if not isinstance(train, TrainingDataset) or len(train) == 0:
            return
        store, rows = train.images, torch.as_tensor(train.indices)
        cache = store.cache
        fill = {"device": self.device, "batch_size": max(self.batch_size, 64)}
        if cache.active not in (None, HEAD):
            # Training from cached activations: the embedding is the short
            # rest of the frozen network away.
            cache.fill(self.module_, store, HEAD, source=cache.active, **fill)
        elif cache.active is None:
            # Training from images: compute the embeddings once, aside.
            cache = ActivationCache()
            if not cache.fill(self.module_, store, HEAD, **fill):
                return  # embeddings beyond MAX_CACHE_BYTES: the head starts at random

        embeddings = cache.values[HEAD][rows]
        weight = getattr(self, "class_weight_", None)
        fit_linear_probe(
            self.module_.head[-1],
            embeddings,
            train.y[rows],
            class_weight=None if weight is None else torch.as_tensor(weight),
        )

    def leave_training(self):
        """Back to image input after training (called by :class:`PhaseSwitch`)."""
        self.module_.input_start = None
        self._network_is_pretrained = False

    # ------------------------------------------------------------ inference

    def forward_iter(self, X, training=False, device="cpu"):
        if is_dataset(X):
            with self._resolved_device():
                yield from super().forward_iter(X, training=training, device=device)
            return
        # Images to predict on: decode in threads ahead of the network (the
        # extractor's decoder) rather than one image at a time in a Dataset.
        self.module_.input_start = None
        items = self._validate_images(X, reset=False)
        crop = self.module_.backbone.preprocessing.pil_transform()
        batch_size = self.get_params_for("iterator_valid").get("batch_size", self.batch_size)
        decoder = BatchDecoder(
            items, crop, batch_size=batch_size, num_workers=resolve_num_workers(self.num_workers),
            draft_size=crop.draft_size,
        )
        with self._resolved_device():
            for _, images, _ in decoder:
                yp = self.evaluation_step((images, None), training=training)
                yield to_device(yp, device=device)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), rows summing to 1."""
        if not (self.initialized_ and (self.classes is not None or hasattr(self, "classes_inferred_"))):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit first")
        return super().predict_proba(X)

    def predict(self, X):
        """Predicted labels (the original label values)."""
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]

    def score(self, X, y, sample_weight=None):
        """Accuracy on (X, y); labels never seen in fit are an error."""
        self._check_known_labels(column_or_1d(y))
        return super().score(X, y, sample_weight=sample_weight)

    def load_params(self, *args, **kwargs):
        with self._resolved_device():
            return super().load_params(*args, **kwargs)

    def __setstate__(self, state):
        requested = state.get("device")
        if isinstance(requested, str) and requested == "auto":
            # Load onto whatever this machine has (a GPU-trained net on a CPU).
            state["device"] = str(resolve_device("auto"))
            super().__setstate__(state)
            self.device = requested
        else:
            super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

"""FineTuneClassifier: fine-tune a pretrained backbone, scikit-learn style.

The classic recipe as one estimator: (1) freeze the pretrained base, (2)
train a new head on it, (3) unfreeze the last layer groups, (4) train them
with the head at a low learning rate, (5) earlier groups slower than later
ones. It is a skorch ``NeuralNetClassifier``, so callbacks, ``history``,
``train_split``, ``optimizer__*``, ``warm_start`` and ``save_params`` work as
skorch users expect. The estimator is this one class, read top to bottom:
parameters, set-up, data, training, computation, inference. What it does
with plain objects and functions lives in their own modules (the network,
the callbacks, the probe, the datasets, the activation cache, the labels,
the training runs, the prefix's engine). skorch is extended only through
its documented hooks (``initialize_*``, ``get_iterator``,
``get_split_datasets``, ``infer``, ``get_loss``, ``train_step``, callbacks).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, column_or_1d
from skorch import NeuralNetClassifier
from skorch.utils import TeeGenerator, is_dataset, to_device, to_tensor
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..backbones import get_backbone
from ..backbones._weights import weights_identity
from ..feature_extraction import FrozenFeatureClassifier
from ..image import BatchDecoder, resolve_num_workers
from ..image._validation import ImageInputMixin, check_image_labels
from ..utils import autocast_context, resolve_device
from ..utils._classes import align_proba
from ._activation_cache import leave, mark_pretrained, route
from ._callbacks import default_callbacks
from ._check import keeps_frozen_model
from ._datasets import TrainingDataset, reject_user_dataset, training_dataset
from ._display import hyperparameter_repr
from ._fast_prefix import ENGINES, fit_fast_prefix, prediction_prefix
from ._labels import check_known_labels, class_weights, classes_of, encode_labels
from ._network import FineTuneNetwork, param_groups, resolve_unfreeze, set_trainable, suffix_start
from ._persistence import is_saved_state, restore_state, saved_state
from ._probe import probe_head
from ._runs import RunSnapshot, epochs_to_refit, local_rng, training_view, warn_interrupted

__all__ = ["FineTuneClassifier"]

# What batch_size="auto" trains and predicts with (see the class docstring).
AUTO_BATCH_SIZE = 32


def _is_auto(device) -> bool:
    return isinstance(device, str) and device == "auto"


class FineTuneClassifier(ImageInputMixin, NeuralNetClassifier):
    """Fine-tune a pretrained image network: head first, then the last layer groups.

    Training runs in two phases. In phase 1 (``head_epochs`` epochs) the
    whole pretrained network is frozen and only a new linear head trains. In
    phase 2 the last ``unfreeze`` layer groups of the backbone train too,
    each earlier group ``lr_decay`` times slower than the next (differential
    learning rates), their rates decaying along a half cosine to zero.

    By default the new head starts as the logistic regression of the frozen
    embeddings (so phase 1 needs no epochs) and the network trains on every
    image for ``max_epochs`` epochs, the rates annealed to zero. Before
    that, an internal check (``check_folds``) cross-validates this
    fine-tuning against two models on frozen features, on the training
    images only: that logistic regression alone on the frozen network, and
    the library's frozen-features recipe,
    :class:`~sktransfer.FrozenFeatureClassifier` (``frozen``). The recipe
    is the fitted model (``fine_tuned_=False``, ``frozen_`` predicts)
    unless fine-tuning or the probe is significantly more accurate than it
    on the held-out images (McNemar's test), so the fine-tuner is not worse
    than frozen features unless the evidence says otherwise. No split is
    held out: the annealed schedule already fixes where training ends, and on
    a few hundred images a validated run followed by a refit on all of them
    costs a second training to choose an epoch count. Passing a
    ``train_split`` (skorch's ``ValidSplit(5, stratified=True)``: 20%,
    stratified) holds one out: early stopping on its loss, then, with
    ``refit``, training again from the pretrained weights on all the data
    for the best number of epochs.

    Without augmentation, the frozen part of the network computes the same
    thing every epoch, so its output is computed once per phase and only the
    trainable rest runs each epoch (frozen-prefix caching); the weights are
    the same as without caching.

    Parameters
    ----------
    model : str, Backbone or torch.nn.Module, default="efficientnet_lite2"
        The backbone, as for :func:`sktransfer.backbones.get_backbone`. A
        module passed here is copied at each fit, never trained in place.
        The default is :class:`~sktransfer.FrozenFeatureClassifier`'s
        backbone too; with ``unfreeze=1`` it fine-tunes only its last
        layer group (see "The defaults" in the user guide).
    weights : str, path or None, default="DEFAULT"
        Pretrained weights; None for random initialisation.
    unfreeze : int or "all", default=1
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
        L2-penalised logistic regression (``C`` chosen by the internal
        check's folds, ``probe_C_``; scikit-learn's default ``C=1`` without
        the check) on the frozen embeddings of the training split, by
        L-BFGS, before phase 1 -- "linear probing, then fine-tuning" (LP-FT), which Kumar et al.
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
        weights, trained on the training part of the split only.
    augment : None, "light" or callable, default=None
        Training augmentation. ``"light"``: random resized crop (35-100% of
        the area) and horizontal flip. A callable receives the RGB PIL image
        resized to the backbone's ``resize_size`` (on its shorter side, or
        as the preprocessing's ``crop_mode`` says) and
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
        Makes ``fit`` reproducible (weights of the head, shuffling, dropout,
        augmentation): the fit draws from torch's generator seeded with it,
        and the caller's global generator state is restored afterwards.
    device : str or torch.device, default="auto"
        ``"auto"`` picks cuda, then mps, then cpu (resolved at fit into
        ``device_``; the parameter stays ``"auto"``). Set after fit, it takes
        effect at the next fit.
    precision : {"float32", "float16", "bfloat16"}, default="float32"
        Mixed precision: the network's forward pass runs under
        ``torch.autocast`` with this precision (weights, optimizer state, loss
        and outputs stay float32). ``"float16"`` also scales the loss
        (``torch.amp.GradScaler``) so small gradients do not underflow.
        Meant for GPUs; on a CPU, bfloat16 runs but is rarely faster.
    batch_size : int or "auto", default="auto"
        Images per training step and per prediction batch (skorch's
        ``iterator_train__batch_size`` and ``iterator_valid__batch_size``
        override either). ``"auto"``: 32 on every device: the batch size
        shapes training (with ``lr``, the noise of each step), so it does not
        change with the device, and one seed trains the same model on a CPU
        and a GPU. The frozen prefix's pass filling the activation cache
        runs in batches of at least 64.
    patience : int or None, default=5
        Early stopping: epochs without improvement of the validation loss
        before stopping; the best epoch's weights are restored (and its
        number of epochs is what ``refit`` trains for). Only with a
        ``train_split``; None disables it.
    cache_activations : bool, default=True
        Use frozen-prefix caching when possible (``augment=None`` and
        ``batchnorm="frozen"``).
    image_shape : "auto" or tuple, default="auto"
        Layout of the rows of a 2-D numeric input (each row a flattened
        image): ``(height, width)`` or ``(height, width, channels)``.
        ``"auto"`` accepts only square greyscale rows (length a perfect
        square) and square RGB rows (three times one); any other width is
        a ValueError.
    num_workers : int or "auto", default="auto"
        Threads decoding the training images.
    engine : {"auto", "torch", "openvino", "onnxruntime"}, default="auto"
        What runs the frozen prefix (the groups that do not train) outside
        training: the pass filling the activation cache, and that part of
        prediction while its weights are the pretrained ones. OpenVINO and
        ONNX Runtime run the same exported graph (exported once,
        disk-cached for reproducible weights), at float32, faster than
        PyTorch on a CPU and equal to it to rounding.
        ``"auto"``: on a CPU, OpenVINO when installed, then ONNX Runtime,
        else PyTorch (the feature extractor's order); on a GPU, PyTorch.
        The graph engines run on the CPU only: naming one with another
        device is a ValueError, naming one that is not installed an
        ImportError. Set after fit (``set_params``), a named engine is
        obeyed by prediction too.
    check_folds : int >= 2 or None, default=3
        The internal check of a ``fit`` without ``train_split``: stratified
        folds of the training images (fewer when a class has fewer images;
        none, no check, when one has a single image). The probe's ``C`` is
        chosen among 0.1, 0.3, 1, 3, 10 by held-out log-loss; on each fold
        a fresh pretrained network is fine-tuned on the other folds as the
        final fit will be, and it and the probe alone predict the held-out
        fold; the ``frozen`` recipe is cross-validated on the same folds
        (its ``cv``) and fitted on every image. The recipe is kept unless
        a challenger (fine-tuning, the probe) is more accurate than it by
        McNemar's one-sided exact test at 5% on the held-out predictions;
        of the challengers that are, the most accurate (equal: the lower
        log-loss; still equal: the probe). Unless it is fine-tuning,
        ``fit`` stops there. The folds reuse the fit's
        decoded images and cached activations, so the check costs about
        ``check_folds`` trainings of the unfrozen groups on ``(k-1)/k`` of
        the images, plus one fit of the recipe (which embeds each image
        with each of its backbones). None: always fine-tune, from
        the ``C=1`` probe.
    frozen : FrozenFeatureClassifier or None, default=None
        The frozen-features contender of the internal check, and the model
        when it wins; cloned, its ``cv`` set to the check's folds. None:
        ``FrozenFeatureClassifier(random_state=random_state)``, the
        library's recipe with its defaults (its own backbones, whatever
        ``model`` is). It does not use ``class_weight``.
    iterator_train__shuffle : bool, default=True
        Draw the training batches in a new random order each epoch (skorch's
        own default is False).
    **kwargs
        Any other skorch ``NeuralNetClassifier`` parameter: ``criterion``
        (default ``CrossEntropyLoss``), ``optimizer`` (default ``AdamW``),
        ``train_split`` (default None: train on every image; a
        ``skorch.dataset.ValidSplit`` holds out a validation split, for early
        stopping, ``valid_acc`` and ``refit``),
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
        The number of epochs the refit trained for (None without refit, or
        when the refit was interrupted).
    device_ : torch.device
        The device the network runs on (``device`` resolved).
    engine_ : {"openvino", "onnxruntime", "torch"}
        The engine ``engine`` resolved to. A fitted model
        unpickled where the engine ``"auto"`` chose is not installed
        predicts with PyTorch (the same function, to rounding).
    fine_tuned_ : bool
        Whether the network was fine-tuned; False when the internal check
        kept frozen features (the history is then empty, and the network's
        head is the probe).
    frozen_ : FrozenFeatureClassifier or None
        The fitted frozen recipe when the internal check kept it: it makes
        the predictions (a later ``partial_fit`` trains the network from
        the probe). None otherwise.
    check_scores_ : dict or None
        The internal check's cross-validated ``probe_accuracy``,
        ``probe_log_loss``, ``frozen_accuracy``, ``frozen_log_loss`` (the
        recipe's), ``fine_tuned_accuracy``, ``fine_tuned_log_loss``, the
        McNemar ``probe_p_value`` and ``fine_tuned_p_value`` against the
        recipe, and ``n_folds``; None when no check ran.
    probe_C_ : float
        The ``C`` of the probe head (1.0 without the check).
    validating_ : bool
        Whether the fit held out a validation split.
    interrupted_ : bool
        Whether the last ``fit`` was interrupted (KeyboardInterrupt). As in
        skorch, an interrupted run keeps what it trained; an interrupted
        refit keeps the validated run's model instead, and warns.

    Notes
    -----
    Pickling (``pickle``, ``joblib``, ``skops.io``) saves plain data: the
    parameters that differ from their defaults, the classes, the history
    (as JSON) and the trained network's tensors, restored with
    ``torch.load(weights_only=True)``; the optimizer's state only with
    ``warm_start=True``, the one case where a later ``fit`` continues from
    it (``partial_fit`` after loading, or on a ``copy.deepcopy``, otherwise
    starts the optimizer afresh). A file is about the size of the network, and loading builds
    the named architecture without reading its pretrained weights. With
    ``skops.io``, a classifier of a named ``model`` lists one type to trust,
    ``sktransfer.finetune._classifier.FineTuneClassifier``; a parameter that
    is not plain data (a module passed as ``model``, a ``train_split``,
    ``callbacks``, an ``augment`` function, another ``optimizer`` class)
    is saved as itself and listed with its own types: trust those only for
    a file from a trusted source.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FineTuneClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> y = ["cat", "dog"] * 4
    >>> clf = FineTuneClassifier(model="tiny_convnet", weights=None, max_epochs=2,
    ...                          head_epochs=1, verbose=0, random_state=0).fit(X, y)
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
        "precision": [StrOptions({"float32", "float16", "bfloat16"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "cache_activations": ["boolean"],
        "num_workers": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "engine": [StrOptions(set(ENGINES))],
        "check_folds": [Interval(Integral, 2, None, closed="left"), None],
        "frozen": [FrozenFeatureClassifier, None],
    }

    def __init__(
        self,
        *,
        model: str | nn.Module = "efficientnet_lite2",
        weights: str | os.PathLike | None = "DEFAULT",
        unfreeze: int | str = 1,
        lr: float = 2e-4,
        lr_decay: float = 0.3,
        head_epochs: int = 0,
        head_init: str = "probe",
        max_epochs: int = 5,
        lr_schedule: str = "cosine",
        refit: bool = True,
        augment: str | Callable | None = None,
        batchnorm: str = "frozen",
        class_weight: str | dict | None = None,
        random_state: int | None = None,
        device: str | torch.device = "auto",
        precision: str = "float32",
        batch_size: int | str = "auto",
        patience: int | None = 5,
        cache_activations: bool = True,
        image_shape: str | tuple = "auto",
        num_workers: int | str = "auto",
        engine: str = "auto",
        check_folds: int | None = 3,
        frozen: FrozenFeatureClassifier | None = None,
        module: type[nn.Module] = FineTuneNetwork,
        criterion: type[nn.Module] = nn.CrossEntropyLoss,
        optimizer: type[torch.optim.Optimizer] = torch.optim.AdamW,
        train_split: Callable | None = None,
        iterator_train__shuffle: bool = True,
        **kwargs: Any,
    ) -> None:
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
        self.precision = precision
        self.patience = patience
        self.cache_activations = cache_activations
        self.image_shape = image_shape
        self.num_workers = num_workers
        self.engine = engine
        self.check_folds = check_folds
        self.frozen = frozen
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            iterator_train__shuffle=iterator_train__shuffle,
            **kwargs,
        )

    # ------------------------------------------------------------ parameters
    #
    # skorch moves the network, the criterion and its cached predictions to
    # ``self.device``, and reads it when loading parameters; it cannot move
    # anything to "auto". So ``initialize`` resolves the ``device`` parameter
    # once into ``device_``, records the parameter as the user set it (what
    # ``get_params`` reports: clones and searches resolve "auto" again where
    # they fit) and, for "auto", hands skorch the resolved device in
    # ``self.device``.

    def _device_parameter(self) -> str | torch.device:
        return vars(self).get("_device_param", self.device)

    def get_params(self, deep: bool = True, **kwargs: Any) -> dict:
        """Parameters as set (``device`` as given, e.g. ``"auto"``, also after fit)."""
        params = super().get_params(deep=deep, **kwargs)
        params["device"] = self._device_parameter()
        return params

    def _validate_own_params(self, params: dict | None = None) -> None:
        if params is None:
            params = {key: getattr(self, key) for key in self._parameter_constraints}
            params["device"] = self._device_parameter()
        constraints = {key: self._parameter_constraints[key] for key in params}
        validate_parameter_constraints(constraints, params, caller_name=type(self).__name__)

    def set_params(self, **params: Any) -> FineTuneClassifier:
        """Set parameters, checked before anything uses them.

        Before fit they are stored, as scikit-learn expects, and checked by
        ``fit``. On a fitted net, where ``lr`` and ``lr_decay`` go straight
        into the optimizer's param groups (the per-group decay kept), they
        are checked first: an invalid value raises ``InvalidParameterError``
        and changes nothing. A new ``device`` takes effect at the next
        ``initialize`` (``fit``): the network stays on ``device_`` until then.
        ``module`` and ``module__*`` on a fitted net are a ValueError: skorch
        would build a new, untrained network in place of the fitted one.
        """
        if self.initialized_:
            rebuilt = sorted(k for k in params if k == "module" or k.startswith("module__"))
            if rebuilt:
                # skorch re-initialises the network for these: the training
                # would be lost while the estimator still reported fitted.
                raise ValueError(
                    f"set_params({', '.join(rebuilt)}=...) on a fitted {type(self).__name__} would build a new, "
                    "untrained network and discard the fitted one. Set it before fit, or on a clone: "
                    "sklearn.base.clone(estimator).set_params(...)"
                )
            self._validate_own_params({k: v for k, v in params.items() if k in self._parameter_constraints})
        if "device" in params and "_device_param" in vars(self):
            self._device_param = params.pop("device")
        # skorch would keep an unknown prefix's values as settings of its own: route them to the recipe.
        nested = {name[len("frozen__") :]: params.pop(name) for name in list(params) if name.startswith("frozen__")}
        if nested:
            frozen = params.get("frozen", self.frozen)
            if frozen is None:
                raise ValueError(
                    f"set_params({', '.join(f'frozen__{name}' for name in nested)}=...): frozen is None (the "
                    "default recipe); pass frozen=FrozenFeatureClassifier(...) to set its parameters"
                )
            frozen.set_params(**nested)
        super().set_params(**params)
        if self.initialized_ and {"lr", "lr_decay"} & params.keys():
            self.apply_learning_rates()
        return self

    def apply_learning_rates(self, scale: float = 1.0) -> None:
        """Write ``lr`` and ``lr_decay`` (times ``scale``) into the optimizer's param groups."""
        wanted = {g["name"]: g["lr"] for g in param_groups(self.module_, self.lr * scale, self.lr_decay)}
        for group in self.optimizer_.param_groups:
            if group.get("name") in wanted:
                group["lr"] = wanted[group["name"]]

    def _batch_size(self) -> int:
        return AUTO_BATCH_SIZE if self.batch_size == "auto" else self.batch_size

    # ---------------------------------------------------------------- set-up

    def __repr__(self) -> str:
        # scikit-learn's repr (the hyperparameters set), not skorch's module dump.
        return hyperparameter_repr(self)

    def get_default_callbacks(self) -> list:
        patience = self.patience if self._holds_out_validation() else None
        return default_callbacks(super().get_default_callbacks(), early_stopping_patience=patience)

    def initialize(self) -> FineTuneClassifier:
        """Resolve ``device`` into ``device_`` and ``engine`` into ``engine_``, then initialise as skorch does."""
        self._validate_own_params()
        requested = self._device_parameter()
        self.device_ = resolve_device(requested)
        # What skorch moves tensors to: the parameter itself unless it is "auto".
        self._device_param = requested
        self.device = str(self.device_) if _is_auto(requested) else requested
        model, weights = self.model, self.weights
        self._fast_prefix = fit_fast_prefix(
            getattr(self, "_fast_prefix", None), self.engine, self.device_, lambda: weights_identity(model, weights)
        )
        self.engine_ = self._fast_prefix.engine
        return super().initialize()

    def initialize_module(self) -> FineTuneClassifier:
        backbone = get_backbone(self.model, self.weights)
        if isinstance(self.model, nn.Module):
            # Never fine-tune the caller's module in place (refits, clones).
            backbone = copy.deepcopy(backbone)
        self.n_unfrozen_groups_ = resolve_unfreeze(self.unfreeze, backbone)
        kwargs = self.get_params_for("module")
        kwargs.setdefault("batchnorm", self.batchnorm)
        self.module_ = self.module(backbone, len(self.classes_), **kwargs)
        if isinstance(self.module_, FineTuneNetwork):
            self.module_.set_classes(self.classes_)
        if self.device_.type == "cpu":
            # oneDNN trains the convolutions of mobile networks (depthwise,
            # 1x1) markedly faster on channels-last tensors than on NCHW.
            self.module_.to(memory_format=torch.channels_last)
        set_trainable(self.module_, 0)
        mark_pretrained(self.module_)
        return self

    def initialize_criterion(self) -> FineTuneClassifier:
        kwargs = self.get_params_for("criterion")
        weight = getattr(self, "class_weight_", None)
        if weight is not None and "weight" not in kwargs:
            kwargs["weight"] = torch.as_tensor(weight, dtype=torch.float32)
        self.criterion_ = self.criterion(**kwargs)
        return self

    def initialize_optimizer(self, triggered_directly: bool | None = None) -> FineTuneClassifier:
        _, kwargs = self.get_params_for_optimizer("optimizer", self.module_.named_parameters())
        head_lr = kwargs.pop("lr")
        self.optimizer_ = self.optimizer(param_groups(self.module_, head_lr, self.lr_decay), **kwargs)
        # float16 gradients underflow unless the loss is scaled (see train_step).
        self.grad_scaler_ = torch.amp.GradScaler(self.device_.type) if self.precision == "float16" else None
        return self

    def __getstate__(self) -> dict:
        # Plain data and tensors, not skorch's pickled objects (see _persistence and the Notes).
        return saved_state(self)

    def __setstate__(self, state: dict) -> None:
        if is_saved_state(state):
            restore_state(self, state)
            return
        # A pickle of skorch's own format (an earlier sktransfer).
        requested = state.get("_device_param", state["device"])
        if _is_auto(requested):
            # "auto" resolves again where the net is unpickled: a GPU-trained
            # net loads on a CPU-only machine, without a device warning.
            state["device"] = resolve_device("auto")
        super().__setstate__(state)
        if "_device_param" in state:
            self.device_ = torch.device(self.device)
        else:  # not initialised: the parameter stays as set
            self.device = requested

    # ------------------------------------------------------------------ data

    def check_data(self, X: Any, y: ArrayLike | None = None) -> None:
        # The classes come from the original labels (fit, partial_fit);
        # skorch's version would set them from the encoded ones.
        pass

    def _checked_inputs(self, X, y, *, new_fit: bool) -> tuple[list, np.ndarray]:
        """The checked image items and the labels as class indices.

        A new fit (``new_fit=True``) also sets ``classes_``, the class weights
        and whether a validation split is held out; otherwise labels must be
        among the known classes.
        """
        items = self._validate_images(X, reset=new_fit)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = check_image_labels(y, len(items))
        if new_fit:
            self.classes_inferred_ = classes_of(y, self.classes, owner=type(self).__name__)
            self.class_weight_ = class_weights(self.class_weight, self.classes_inferred_, y)
            self.validating_ = self.train_split is not None
        return items, encode_labels(y, self.classes_)

    def _training_dataset(self, items: list, y_encoded: np.ndarray) -> TrainingDataset:
        model, weights = self.model, self.weights
        return training_dataset(
            items,
            y_encoded,
            self.module_,
            augment=self.augment,
            num_workers=self.num_workers,
            network_identity=lambda: weights_identity(model, weights),
        )

    def get_iterator(self, dataset: Dataset, training: bool = False) -> DataLoader:
        """skorch's iterator over ``dataset``, in batches of ``batch_size`` ("auto" resolved)."""
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        kwargs.setdefault("batch_size", self._batch_size())
        if kwargs["batch_size"] == -1:  # skorch's spelling of "the whole dataset"
            kwargs["batch_size"] = len(dataset)
        return (self.iterator_train if training else self.iterator_valid)(dataset, **kwargs)

    def get_split_datasets(self, X: Any, y: ArrayLike | None = None, **fit_params: Any) -> tuple:
        if not self._holds_out_validation():
            return training_view(self.get_dataset(X, y), train=True), None
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        return training_view(dataset_train, train=True), training_view(dataset_valid, train=False)

    def _holds_out_validation(self) -> bool:
        return self.train_split is not None and getattr(self, "validating_", True)

    # -------------------------------------------------------------- training

    def fit(self, X: Any, y: ArrayLike, **fit_params: Any) -> FineTuneClassifier:
        """Fit the head, then the last ``unfreeze`` layer groups.

        By default the internal check (``check_folds``) first
        cross-validates fine-tuning against the probe on the frozen network
        and the frozen recipe (``frozen``), then every image trains for
        ``max_epochs`` epochs; or, when a frozen model won, the network
        does not train (``fine_tuned_=False``) and the model is the probe,
        fitted on every image, or the recipe (``frozen_``). With a
        ``train_split`` the run is validated and early-stopped; with
        ``refit=True`` the network then starts again from the pretrained
        weights and trains on all of ``X`` for the best run's number of
        epochs.

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
        reject_user_dataset(X, "fit")
        fresh = not (self.warm_start and self.initialized_)
        seed = self.random_state if fresh else None
        self.interrupted_ = False
        with local_rng(seed, resolve_device(self._device_parameter())):
            if fresh:
                self.best_epoch_, self.validation_history_, self._fast_prefix = None, None, None
                items, y_encoded = self._checked_inputs(X, y, new_fit=True)
                self.initialize()
            else:
                items, y_encoded = self._checked_inputs(X, y, new_fit=False)
            dataset = self._training_dataset(items, y_encoded)
            if fresh and keeps_frozen_model(self, dataset, y_encoded, items):
                return self
            if not fresh:
                self.fine_tuned_, self.frozen_ = True, None  # training goes on: the network predicts
            self._train(dataset, y_encoded, **fit_params)
            if self.interrupted_:
                warn_interrupted(type(self).__name__, "the training run", len(self.history))
            elif fresh and self.refit:
                self._refit_on_all(dataset, y_encoded, **fit_params)
        return self

    def partial_fit(
        self, X: Any, y: ArrayLike | None = None, classes: ArrayLike | None = None, **fit_params: Any
    ) -> FineTuneClassifier:
        """Continue training for ``max_epochs`` epochs (initialising if needed)."""
        reject_user_dataset(X, "partial_fit")
        new_fit = not self.initialized_
        items, y_encoded = self._checked_inputs(X, y, new_fit=new_fit)
        if new_fit:
            self.initialize()
            self.check_scores_, self.probe_C_ = None, 1.0  # no check: see fit
        self.fine_tuned_, self.frozen_ = True, None  # training goes on: the network predicts
        self.interrupted_ = False
        self._train(self._training_dataset(items, y_encoded), y_encoded, classes, **fit_params)
        if self.interrupted_:
            warn_interrupted(type(self).__name__, "partial_fit", len(self.history))
        return self

    def _train(self, dataset: TrainingDataset, y_encoded: np.ndarray, *args, **fit_params) -> None:
        try:
            super().partial_fit(dataset, y_encoded, *args, **fit_params)
        finally:
            # Also when an exception escapes skorch (on_train_end not called).
            leave(self.module_)

    def fit_loop(
        self, X: Any, y: ArrayLike | None = None, epochs: int | None = None, **fit_params: Any
    ) -> FineTuneClassifier:
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            # skorch's partial_fit swallows it (the run keeps what it
            # trained); remember it so that no refit is reported.
            self.interrupted_ = True
            raise

    def _refit_on_all(self, dataset: TrainingDataset, y_encoded: np.ndarray, **fit_params) -> None:
        """Train again from the pretrained weights on all data, for the best run's epochs.

        Like scikit-learn's ``refit``: the validation split chose the number
        of epochs, and the images it held out now train too. The decoded
        images and the frozen prefix's activations are reused. An interrupted
        refit restores the validated run's model.
        """
        epochs = epochs_to_refit(self.history, self.patience)
        if epochs is None:
            return
        validated = RunSnapshot(self.history, self.module_, self.optimizer_)
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
            warn_interrupted(
                type(self).__name__,
                "the refit",
                len(self.history),
                "the model is the validated run's, trained without the held-out split",
            )
            self.history, self.module_ = validated.history, validated.module
            self.initialize_optimizer()
            self.optimizer_.load_state_dict(validated.optimizer_state)
            return
        self.validation_history_, self.best_epoch_ = validated.history, epochs

    def enter_phase(self, phase: int, datasets: list) -> None:
        """Freeze for ``phase`` (1: head only, 2: last groups too) and cache what is frozen.

        Called by the :class:`PhaseSwitch` callback. In phase 1 the cache
        also keeps the activations where phase 2 will enter, and derives the
        embedding from them, so the frozen prefix runs once per fit.
        """
        n_unfrozen = 0 if phase == 1 else self.n_unfrozen_groups_
        set_trainable(self.module_, n_unfrozen)
        stores = list({id(d.images): d.images for d in datasets if isinstance(d, TrainingDataset)}.values())
        compute = {"device": self.device_, "batch_size": max(self._batch_size(), 64)}
        route(
            self.module_,
            stores,
            suffix_start(self.module_, n_unfrozen),
            later=suffix_start(self.module_, self.n_unfrozen_groups_) if phase == 1 else None,
            enabled=self.cache_activations and self.augment is None and self.batchnorm == "frozen",
            fast=self._fast_prefix,
            **compute,
        )
        if self.head_init == "probe" and len(self.history) == 1:  # first epoch of a fresh fit
            probe_head(
                self.module_,
                datasets[0],
                class_weight=getattr(self, "class_weight_", None),
                C=getattr(self, "probe_C_", 1.0),
                **compute,
            )

    def leave_training(self) -> None:
        """Back to image input after training (called by :class:`PhaseSwitch`)."""
        leave(self.module_)

    # ----------------------------------------------------------- computation

    def infer(self, x: Any, **fit_params: Any) -> torch.Tensor:
        x = to_tensor(x, device=self.device_)
        with autocast_context(self.device_, self.precision):
            y_pred = self.module_(x, **fit_params)
        # Everything after the logits (loss, softmax) in float32.
        return y_pred.float()

    def get_loss(self, y_pred: torch.Tensor, y_true: Any, X: Any = None, training: bool = False) -> torch.Tensor:
        if isinstance(self.criterion_, nn.NLLLoss):
            # As skorch's classifier: NLLLoss expects log-probabilities.
            y_pred = torch.log(y_pred + torch.finfo(y_pred.dtype).eps)
        return self.criterion_(y_pred, to_tensor(y_true, device=self.device_))

    def train_step(self, batch: Any, **fit_params: Any) -> dict:
        scaler = self.grad_scaler_
        if scaler is None:
            return super().train_step(batch, **fit_params)
        # skorch's step hands the optimizer a closure; a GradScaler takes
        # none: it steps the optimizer itself (and skips a step on overflow).
        self.optimizer_.zero_grad()
        self.module_.train(True)
        self.criterion_.train(True)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        scaler.unscale_(self.optimizer_)  # true gradients for on_grad_computed (e.g. clipping)
        named_parameters = TeeGenerator(self.get_all_learnable_params())
        self.notify("on_grad_computed", named_parameters=named_parameters, batch=batch, training=True)
        scaler.step(self.optimizer_)
        scaler.update()
        return {"loss": loss, "y_pred": y_pred}

    # ------------------------------------------------------------- inference

    @property
    def classes_(self) -> np.ndarray:
        # skorch's ``classes`` parameter fixes the classes (and their order)
        # before fit, e.g. to initialize() and load_params() for a resume.
        if self.classes is not None:
            return np.asarray(self.classes)
        if not hasattr(self, "classes_inferred_"):
            # NotFittedError is an AttributeError too: hasattr() keeps working.
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet and knows no classes: "
                "call fit, or pass classes=[...] to set them before initialize() or load_params()"
            )
        return self.classes_inferred_

    def __sklearn_is_fitted__(self) -> bool:
        # Fitted: initialised and the classes known (from fit, or skorch's
        # ``classes`` parameter for a resume through load_params).
        return bool(self.initialized_) and (self.classes is not None or hasattr(self, "classes_inferred_"))

    def _prediction_prefix(self) -> tuple | None:
        return prediction_prefix(
            getattr(self, "_fast_prefix", None),
            self.engine,
            precision=self.precision,
            device=self.device_,
            network=self.module_,
            n_unfrozen=self.n_unfrozen_groups_,
        )

    def forward_iter(
        self, X: Any, training: bool = False, device: str | torch.device = "cpu"
    ) -> Iterator[torch.Tensor]:
        if is_dataset(X):  # the validation split, during fit
            yield from super().forward_iter(X, training=training, device=device)
            return
        # Images to predict on: decoded in threads ahead of the network (the
        # extractor's decoder) rather than one image at a time in a Dataset.
        items = self._validate_images(X, reset=False)
        crop = self.module_.backbone.preprocessing.pil_transform()
        decoder = BatchDecoder(
            items,
            crop,
            batch_size=self.get_params_for("iterator_valid").get("batch_size", self._batch_size()),
            num_workers=resolve_num_workers(self.num_workers),
            draft_size=crop.draft_size,
        )
        prefix = None if training else self._prediction_prefix()
        for _, images, _ in decoder:
            if prefix is None:
                yp = self.evaluation_step((images, None), training=training)
            else:  # the frozen prefix on the graph engine, the rest in PyTorch
                runner, start = prefix
                self.module_.eval()
                with torch.no_grad():
                    yp = self.infer(runner(images)[-1], start=start)
            yield to_device(yp, device=device)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), rows summing to 1."""
        check_is_fitted(self)
        reject_user_dataset(X, "predict_proba")
        frozen = getattr(self, "frozen_", None)
        if frozen is None:
            return super().predict_proba(X)
        # The recipe knows the classes it was fitted on; columns in classes_' order.
        return align_proba(frozen.predict_proba(X), frozen.classes_, self.classes_)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (the original label values)."""
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]

    def score(self, X: Any, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy on (X, y); labels never seen in fit are an error."""
        check_is_fitted(self)
        check_known_labels(column_or_1d(y), self.classes_)
        return super().score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

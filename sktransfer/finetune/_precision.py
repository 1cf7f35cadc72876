"""Device and mixed precision for the fine-tuner's skorch net.

The ``device`` parameter may be ``"auto"``; it is resolved once per
``initialize`` into the fitted attribute ``device_``, and the parameter itself
is never rewritten (a concurrent ``get_params`` or ``predict_proba`` must not
see a half-set value). The forward pass and the loss move their tensors to
``device_`` themselves. skorch still reads ``self.device`` when it moves the
module and criterion (``initialize``), in its callbacks during training, and
when it loads parameters: only there, and only in the calling thread (a
context variable), does ``self.device`` read as the resolved device.

:func:`local_rng` seeds torch's generators (the device's too) for a fit and
gives the caller's states back afterwards.

Mixed precision: the forward pass runs under ``torch.autocast`` with the
``dtype`` parameter (weights, optimizer state, loss and outputs stay float32);
float16 also scales the loss with ``torch.amp.GradScaler`` so small
gradients do not underflow.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import torch
from skorch.utils import TeeGenerator, to_tensor

from ..utils._device import autocast_context, resolve_device

# The estimator whose skorch internals, in this thread, read the resolved device.
_RESOLVING = contextvars.ContextVar("sktransfer_resolving_device", default=None)


def _is_auto(device):
    return isinstance(device, str) and device == "auto"


def _get_device(self):
    requested = self.__dict__.get("device", "auto")
    if _is_auto(requested) and _RESOLVING.get() is self:
        return str(self.device_)
    return requested


def _set_device(self, value):
    if _RESOLVING.get() is self and _is_auto(self.__dict__.get("device")):
        # skorch writing back the device it loaded onto (load_params): the
        # parameter stays what the user set.
        return
    self.__dict__["device"] = value


class DevicePrecisionMixin:
    """``device_`` resolved from ``device``; autocast and loss scaling from ``dtype``.

    The host is a skorch net with ``dtype`` in {"float32", "float16",
    "bfloat16"}.
    """

    # A data descriptor over the instance's ``__dict__["device"]``, where
    # skorch and scikit-learn (get_params, clone, pickle) find the parameter.
    device = property(_get_device, _set_device)

    def _resolve_device(self):
        self.device_ = resolve_device(self.__dict__.get("device", "auto"))

    @contextmanager
    def _skorch_sees_resolved_device(self):
        """Within: skorch's own reads of ``self.device``, in this thread, get ``device_``."""
        token = _RESOLVING.set(self)
        try:
            yield
        finally:
            _RESOLVING.reset(token)

    def _restore_device(self, state, restore):
        """Unpickle with ``restore(state)`` onto this machine's device when ``device="auto"``."""
        requested = state.get("device")
        if _is_auto(requested):
            # A GPU-trained net loads on a CPU-only machine.
            state["device"] = str(resolve_device("auto"))
        restore(state)
        self.device_ = torch.device(self.__dict__["device"])
        if _is_auto(requested):
            self.__dict__["device"] = requested

    def make_grad_scaler(self):
        """A GradScaler for float16, else None."""
        if self.dtype != "float16":
            return None
        return torch.amp.GradScaler(self.device_.type)

    def infer(self, x, **fit_params):
        x = to_tensor(x, device=self.device_)
        with autocast_context(self.device_, self.dtype):
            y_pred = self.module_(x, **fit_params)
        # Everything after the logits (loss, softmax) in float32.
        return y_pred.float()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if isinstance(self.criterion_, torch.nn.NLLLoss):
            # As skorch's classifier: NLLLoss expects log-probabilities.
            y_pred = torch.log(y_pred + torch.finfo(y_pred.dtype).eps)
        return self.criterion_(y_pred, to_tensor(y_true, device=self.device_))

    def train_step(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step(batch, **fit_params)
        # skorch's own step passes a closure to optimizer.step; a GradScaler
        # must call optimizer.step itself (and may skip it on overflow).
        self.optimizer_.zero_grad()
        self.module_.train(True)
        self.criterion_.train(True)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        # True gradients for on_grad_computed callbacks (e.g. clipping).
        scaler.unscale_(self.optimizer_)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        scaler.step(self.optimizer_)
        scaler.update()
        return {"loss": loss, "y_pred": y_pred}


@contextmanager
def local_rng(random_state, device):
    """Seed torch's generators with ``random_state`` within, restoring the caller's state after."""
    if random_state is None:
        yield
        return
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.manual_seed(random_state)
        yield

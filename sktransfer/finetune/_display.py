"""How the fine-tuner shows itself: its repr, and its training log.

skorch's repr lists the network module once initialised (a dump of every
layer, 182 lines for EfficientNet-Lite0) and ``[uninitialized](module=...)``
before; scikit-learn's lists the hyperparameters set away from their
defaults, before and after fit. :func:`hyperparameter_repr` gives the
latter. skorch's ``PrintLog`` colours the best value of each column with
ANSI codes whatever the output, and tabulates every epoch on its own, so a
column that appears in one epoch only (``cache_dur``) shifts the rest:
:class:`EpochLog` prints plain text where the output is not a terminal,
and leaves the once-only timing out of the table (it stays in ``history``).
"""

from __future__ import annotations

import inspect
import re
import sys

import numpy as np
import torch
from skorch.callbacks import PrintLog

__all__ = ["EpochLog", "hyperparameter_repr"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: History keys of a single epoch (the activation cache is built once).
_ONCE_ONLY_KEYS = ("cache_dur",)


def _defaults(cls):
    """Keyword defaults of `cls`'s ``__init__`` and its bases' (the nearest class wins)."""
    defaults = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
    return defaults


def _differs(value, default):
    if value is default:
        return False
    try:
        same = value == default
        return not bool(np.all(same)) if not isinstance(same, bool) else not same
    except Exception:  # noqa: BLE001 -- values that cannot be compared are shown
        return True


def _short(value):
    if inspect.isclass(value):
        return value.__name__
    if isinstance(value, torch.nn.Module):  # a network passed in: its class, not every layer
        return f"{type(value).__name__}(...)"
    return repr(value)


def hyperparameter_repr(estimator) -> str:
    """``ClassName(param=value, ...)``: the parameters set away from their defaults, as scikit-learn shows them.

    Parameters
    ----------
    estimator : skorch.NeuralNet
        Any estimator with ``get_params``.

    Returns
    -------
    str
    """
    defaults = _defaults(type(estimator))
    shown = []
    for name, value in sorted(estimator.get_params(deep=False).items()):
        if name.startswith("_"):
            continue
        # A name no signature has (optimizer__weight_decay=...) was set by the user.
        if name not in defaults or _differs(value, defaults[name]):
            shown.append(f"{name}={_short(value)}")
    return f"{type(estimator).__name__}({', '.join(shown)})"


class EpochLog(PrintLog):
    """skorch's ``PrintLog``, in plain text where the output is not a terminal, without once-only columns.

    Parameters
    ----------
    keys_ignored : str, list of str or None, default=None
        History keys left out of the table, as for ``PrintLog``; the
        activation cache's ``cache_dur`` is always left out (it is in the
        first epoch only, and would shift the columns of the others).
    color : bool or None, default=None
        Colour the best value of each column (ANSI codes); None: when
        ``sys.stdout`` is a terminal.
    **kwargs :
        Passed to ``PrintLog`` (``sink``, ``tablefmt``, ``floatfmt``,
        ``stralign``).
    """

    def __init__(self, keys_ignored=None, color=None, **kwargs):
        super().__init__(keys_ignored=keys_ignored, **kwargs)
        self.color = color

    def initialize(self):
        super().initialize()
        self.keys_ignored_.update(_ONCE_ONLY_KEYS)
        self.color_ = sys.stdout.isatty() if self.color is None else bool(self.color)
        return self

    def format_row(self, row, key, color):
        formatted = super().format_row(row, key, color)
        if not self.color_ and isinstance(formatted, str):
            formatted = _ANSI.sub("", formatted)
        return formatted

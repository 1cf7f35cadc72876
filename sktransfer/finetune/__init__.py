"""Fine-tuning a pretrained network, scikit-learn style (built on skorch)."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    # The lazy exports below, for static tools only: attach imports each on
    # first use at run time.
    from ._classifier import FineTuneClassifier as FineTuneClassifier
    from ._fit_memo import set_fit_memo_limit as set_fit_memo_limit
    from ._network import FineTuneNetwork as FineTuneNetwork

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "FineTuneClassifier": "._classifier",
        "FineTuneNetwork": "._network",
        "set_fit_memo_limit": "._fit_memo",
    },
)

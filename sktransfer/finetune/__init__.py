"""Fine-tuning a pretrained network, scikit-learn style (built on skorch)."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "FineTuneClassifier": "._classifier",
        "FineTuneNetwork": "._network",
        "set_fit_memo_limit": "._fit_memo",
    },
)

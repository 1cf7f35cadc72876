"""Domain shift and when to transfer: plain scikit-learn estimators and tests.

Resampling for label imbalance, importance weighting for covariate shift,
label-shift adaptation, CORAL alignment, shift detection and the
transferred-vs-target-only comparison. Nothing here imports torch.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ResampledClassifier": "._resampling",
        "DomainClassifierWeighter": "._importance_weighting",
        "ImportanceWeightedClassifier": "._importance_weighting",
        "make_importance_weighted_scorer": "._importance_weighting",
        "LabelShiftAdapter": "._label_shift",
        "CORAL": "._coral",
        "ShiftTestResult": "._detection",
        "detect_shift": "._detection",
        "TransferGainResult": "._transfer_gain",
        "transfer_gain": "._transfer_gain",
    },
)

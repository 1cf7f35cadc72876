"""Domain shift and when to transfer: plain scikit-learn estimators and tests.

Resampling for label imbalance, importance weighting for covariate shift,
label-shift adaptation, CORAL alignment, shift detection and the
transferred-vs-target-only comparison. Nothing here imports torch.
"""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._coral import CORAL as CORAL
    from ._detection import ShiftTestResult as ShiftTestResult
    from ._detection import detect_shift as detect_shift
    from ._importance_weighting import DomainClassifierWeighter as DomainClassifierWeighter
    from ._importance_weighting import ImportanceWeightedClassifier as ImportanceWeightedClassifier
    from ._importance_weighting import make_importance_weighted_scorer as make_importance_weighted_scorer
    from ._label_shift import LabelShiftAdapter as LabelShiftAdapter
    from ._resampling import ResampledClassifier as ResampledClassifier
    from ._transfer_gain import TransferGainResult as TransferGainResult
    from ._transfer_gain import transfer_gain as transfer_gain

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

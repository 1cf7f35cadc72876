"""sktransfer: scikit-learn compatible transfer learning for images.

Pretrained networks as scikit-learn transformers (``PretrainedFeatureExtractor``),
fine-tuning with frozen layer groups and differential learning rates
(``FineTuneClassifier``), and helpers for domain shift and for deciding when
transfer helps.
"""

__version__ = "0.1.0"

from ._extractor import PretrainedFeatureExtractor
from ._finetune import FineTuneClassifier
from ._images import ImageLoadError, load_image

from ._coral import CORAL
from ._covariate_shift import (
    DomainClassifierWeighter,
    ImportanceWeightedClassifier,
    make_importance_weighted_scorer,
)
from ._label_shift import LabelShiftAdapter
from ._resampling import ResampledClassifier
from ._shift_detection import ShiftTestResult, detect_shift
from ._transfer_gain import TransferGainResult, transfer_gain

__all__ = [
    "__version__",
    "FineTuneClassifier",
    "ImageLoadError",
    "PretrainedFeatureExtractor",
    "load_image",
    # domain shift and when to transfer (issue 4)
    "CORAL",
    "DomainClassifierWeighter",
    "ImportanceWeightedClassifier",
    "LabelShiftAdapter",
    "ResampledClassifier",
    "ShiftTestResult",
    "TransferGainResult",
    "detect_shift",
    "make_importance_weighted_scorer",
    "transfer_gain",
]

"""sktransfer: scikit-learn compatible transfer learning for images.

Pretrained networks as scikit-learn transformers (``PretrainedFeatureExtractor``),
fine-tuning with frozen layer groups and differential learning rates
(``FineTuneClassifier``), and helpers for domain shift and for deciding when
transfer helps.

Subpackages, one per subject: :mod:`sktransfer.image` (reading images),
:mod:`sktransfer.feature_extraction`, :mod:`sktransfer.finetune`,
:mod:`sktransfer.shift`, :mod:`sktransfer.selection`, :mod:`sktransfer.backbones`,
:mod:`sktransfer.datasets`, :mod:`sktransfer.storage` (embedding store, Parquet
output), :mod:`sktransfer.parallel` (dask, Ray), :mod:`sktransfer.runtime` (the
inference engines, internal) and :mod:`sktransfer.utils`. Their public names
are re-exported here lazily, so ``from sktransfer import CORAL`` does not
import torch.
"""

from ._lazy import attach

__version__ = "0.1.0"

_EXPORTS = {
    "PretrainedFeatureExtractor": "sktransfer.feature_extraction",
    "FrozenFeatureClassifier": "sktransfer.feature_extraction",
    "FineTuneClassifier": "sktransfer.finetune",
    "ImageLoadError": "sktransfer.image",
    "load_image": "sktransfer.image",
    "CORAL": "sktransfer.shift",
    "DomainClassifierWeighter": "sktransfer.shift",
    "ImportanceWeightedClassifier": "sktransfer.shift",
    "LabelShiftAdapter": "sktransfer.shift",
    "ResampledClassifier": "sktransfer.shift",
    "ShiftTestResult": "sktransfer.shift",
    "TransferGainResult": "sktransfer.shift",
    "detect_shift": "sktransfer.shift",
    "make_importance_weighted_scorer": "sktransfer.shift",
    "transfer_gain": "sktransfer.shift",
    "rank_transfer": "sktransfer.selection",
    "make_transferability_scorer": "sktransfer.selection",
    "EmbeddingStore": "sktransfer.storage",
    "embed": "sktransfer.feature_extraction",
    "dask_transform": "sktransfer.parallel",
    "RayEmbedder": "sktransfer.parallel",
}

__getattr__, __dir__, _names = attach(__name__, _EXPORTS)
__all__ = ["__version__", *_names]

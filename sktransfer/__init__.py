"""sktransfer: scikit-learn compatible transfer learning for images.

Pretrained networks as scikit-learn transformers (``PretrainedFeatureExtractor``),
fine-tuning with frozen layer groups and differential learning rates
(``FineTuneClassifier``), and helpers for domain shift and for deciding when
transfer helps.

Subpackages, one per subject: :mod:`sktransfer.image` (reading images),
:mod:`sktransfer.feature_extraction`, :mod:`sktransfer.finetune`,
:mod:`sktransfer.shift`, :mod:`sktransfer.selection`, :mod:`sktransfer.backbones`,
:mod:`sktransfer.datasets`, :mod:`sktransfer.inspection` (diagnostic plots),
:mod:`sktransfer.storage` (embedding store, Parquet output),
:mod:`sktransfer.parallel` (dask, Ray), :mod:`sktransfer.runtime` (the
inference engines, internal) and :mod:`sktransfer.utils`. Their public names
are re-exported here lazily, so ``from sktransfer import CORAL`` does not
import torch.
"""

from typing import TYPE_CHECKING

from ._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from .feature_extraction import FewShotLinearClassifier as FewShotLinearClassifier
    from .feature_extraction import FrozenFeatureClassifier as FrozenFeatureClassifier
    from .feature_extraction import PretrainedFeatureExtractor as PretrainedFeatureExtractor
    from .feature_extraction import embed as embed
    from .finetune import FineTuneClassifier as FineTuneClassifier
    from .image import ImageLoadError as ImageLoadError
    from .image import load_image as load_image
    from .parallel import RayEmbedder as RayEmbedder
    from .parallel import dask_transform as dask_transform
    from .selection import make_transferability_scorer as make_transferability_scorer
    from .selection import rank_transfer as rank_transfer
    from .shift import CORAL as CORAL
    from .shift import DomainClassifierWeighter as DomainClassifierWeighter
    from .shift import ImportanceWeightedClassifier as ImportanceWeightedClassifier
    from .shift import LabelShiftAdapter as LabelShiftAdapter
    from .shift import ResampledClassifier as ResampledClassifier
    from .shift import ShiftTestResult as ShiftTestResult
    from .shift import TransferGainResult as TransferGainResult
    from .shift import detect_shift as detect_shift
    from .shift import make_importance_weighted_scorer as make_importance_weighted_scorer
    from .shift import transfer_gain as transfer_gain
    from .storage import EmbeddingStore as EmbeddingStore

__version__ = "0.1.0"

__getattr__, __dir__, _names = attach_type_checking(__name__, __file__)
__all__ = ["__version__", *_names]

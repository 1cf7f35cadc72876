"""Pretrained networks as scikit-learn transformers: images in, embeddings out."""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._embed import EmbedResult as EmbedResult
    from ._embed import embed as embed
    from ._embedder import Embedder as Embedder
    from ._extractor import PretrainedFeatureExtractor as PretrainedFeatureExtractor
    from ._few_shot_head import FewShotLinearClassifier as FewShotLinearClassifier
    from ._frozen_classifier import FrozenFeatureClassifier as FrozenFeatureClassifier
    from ._pooling import global_pool as global_pool

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

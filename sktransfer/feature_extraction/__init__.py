"""Pretrained networks as scikit-learn transformers: images in, embeddings out."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    # The lazy exports below, imported for static tools only (type checkers,
    # an editor's go-to-definition): `X as X` marks a re-export. At run
    # time attach imports each on first use.
    from ._embedder import Embedder as Embedder
    from ._extractor import PretrainedFeatureExtractor as PretrainedFeatureExtractor
    from ._frozen_classifier import FrozenFeatureClassifier as FrozenFeatureClassifier
    from ._pooling import global_pool as global_pool

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "PretrainedFeatureExtractor": "._extractor",
        "Embedder": "._embedder",
        "FrozenFeatureClassifier": "._frozen_classifier",
        "global_pool": "._pooling",
    },
)

"""Pretrained networks as scikit-learn transformers: images in, embeddings out."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "PretrainedFeatureExtractor": "._extractor",
        "EmbedResult": "._embed",
        "embed": "._embed",
        "Embedder": "._embedder",
        "FrozenFeatureClassifier": "._frozen_classifier",
        "global_pool": "._pooling",
    },
)

"""Keeping embeddings: a persistent store keyed by image content, and tables on disk.

:class:`EmbeddingStore` keeps one embedding per image and configuration
between runs and processes (``PretrainedFeatureExtractor(cache=...)``);
:func:`embed` writes a whole collection's embeddings to a Parquet file,
resuming after an interruption.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "EmbedResult": "._embed",
        "EmbeddingStore": "._store",
        "content_key": "._keys",
        "embed": "._embed",
        "read_embeddings": "._embed",
    },
)

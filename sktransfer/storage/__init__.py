"""Keeping embeddings: a persistent store keyed by image content, and tables on disk.

:class:`EmbeddingStore` keeps one embedding per image and configuration
between runs and processes (``PretrainedFeatureExtractor(cache=...)``);
:class:`EmbeddingTableWriter` writes a Parquet table of embeddings part by
part, resumable, and :func:`read_embeddings` reads one back
(:func:`sktransfer.embed` fills such a table with an extractor). This
package sits below the extractor: it never imports it.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "EmbeddingStore": "._store",
        "EmbeddingTableWriter": "._table",
        "as_store": "._store",
        "content_key": "._keys",
        "read_embeddings": "._table",
    },
)

"""Keeping embeddings: a persistent store keyed by image content, and tables on disk.

:class:`EmbeddingStore` keeps one embedding per image and configuration
between runs and processes (``PretrainedFeatureExtractor(cache=...)``);
:class:`EmbeddingTableWriter` writes a Parquet table of embeddings part by
part, resumable, and :func:`read_embeddings` reads one back
(:func:`sktransfer.embed` fills such a table with an extractor). This
package sits below the extractor: it never imports it.
"""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._keys import content_key as content_key
    from ._keys import read_with_key as read_with_key
    from ._store import EmbeddingStore as EmbeddingStore
    from ._store import as_store as as_store
    from ._table import EmbeddingTableWriter as EmbeddingTableWriter
    from ._table import read_embeddings as read_embeddings

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

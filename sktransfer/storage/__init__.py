"""Keeping embeddings: a persistent store keyed by image content, and tables on disk.

:class:`EmbeddingStore` keeps one embedding per image and configuration
between runs and processes (``PretrainedFeatureExtractor(cache=...)``);
:func:`embed` writes a whole collection's embeddings to a Parquet file,
resuming after an interruption.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    # The lazy exports below, imported for static tools only (type checkers,
    # an editor's go-to-definition): `X as X` marks a re-export. At run
    # time attach imports each on first use.
    from ._embed import EmbedResult as EmbedResult
    from ._embed import embed as embed
    from ._embed import read_embeddings as read_embeddings
    from ._keys import content_key as content_key
    from ._store import EmbeddingStore as EmbeddingStore

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

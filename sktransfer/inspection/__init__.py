"""Diagnostic plots as scikit-learn-style Display objects.

Each display is built with ``from_estimator`` (or from precomputed values:
``from_predictions``, ``from_embeddings``, ``from_history``), draws itself
with ``plot(ax=...)`` and keeps what it drew in ``figure_`` and ``ax_``, as
:class:`sklearn.metrics.ConfusionMatrixDisplay` does. matplotlib is in the
optional ``plot`` extra (``pip install "sktransfer[plot]"``) and is imported
only when a display draws.
"""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._embedding_map import EmbeddingMapDisplay as EmbeddingMapDisplay
    from ._misclassified import MisclassifiedImagesDisplay as MisclassifiedImagesDisplay
    from ._training_curves import TrainingCurvesDisplay as TrainingCurvesDisplay

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

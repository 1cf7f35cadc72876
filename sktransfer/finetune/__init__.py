"""Fine-tuning a pretrained network, scikit-learn style (built on skorch)."""

from typing import TYPE_CHECKING

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._classifier import FineTuneClassifier as FineTuneClassifier
    from ._fit_memo import set_fit_memo_limit as set_fit_memo_limit
    from ._network import FineTuneNetwork as FineTuneNetwork

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)

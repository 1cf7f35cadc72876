"""Choosing what to transfer: rank pretrained feature extractors before training.

:func:`rank_transfer` scores candidate extractors (networks, layers,
poolings) on a labelled target set from features extracted once: LogME,
LEEP, NCE, and cross-validated k-NN and linear-probe accuracies.
:func:`make_transferability_scorer` makes the same scores usable as
``scoring=`` of a scikit-learn search.
"""

from ._ranking import SCORES, rank_transfer
from ._scorer import make_transferability_scorer
from ._scores import leep_score, logme_score, nce_score

__all__ = ["SCORES", "leep_score", "logme_score", "make_transferability_scorer", "nce_score", "rank_transfer"]

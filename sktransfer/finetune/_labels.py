"""Labels of any type for a skorch classifier: classes, class weights, encoding.

skorch's ``NeuralNetClassifier`` expects class indices; scikit-learn users
pass strings, objects or numbers. These functions find the classes of ``y``
(or check ``y`` against the classes skorch's ``classes`` parameter fixes, for
resuming), turn ``class_weight`` into one weight per class, and encode ``y``
as indices for the network. The estimator keeps the original labels in
``classes_``.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

__all__ = ["class_weights", "classes_of", "encode_labels", "check_known_labels"]


def classes_of(y: np.ndarray, classes, *, owner: str) -> np.ndarray:
    """The classes of a new fit: ``classes`` (skorch's parameter) when given, else those of ``y``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Checked labels (``check_image_labels``).
    classes : array-like or None
        Fixed classes, in the order the network's outputs follow; every label
        of ``y`` must be one of them.
    owner : str
        The estimator's name, for the error messages.

    Returns
    -------
    ndarray
    """
    if classes is None:
        found = np.unique(y)
    else:
        found = np.asarray(classes)
        check_known_labels(y, found)
    if len(found) < 2:
        raise ValueError(f"{owner} needs at least 2 classes in y; got 1 class: {found[0]!r}")
    return found


def class_weights(class_weight, classes: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """One weight per class from ``class_weight`` (None, ``"balanced"`` or a dict), or None."""
    if class_weight is None:
        return None
    if class_weight == "balanced":
        return compute_class_weight("balanced", classes=classes, y=y)
    unknown = set(class_weight) - set(classes.tolist())
    if unknown:
        raise ValueError(f"class_weight has labels that are not in y: {sorted(map(str, unknown))}")
    return np.array([float(class_weight.get(c, 1.0)) for c in classes])


def check_known_labels(y, classes: np.ndarray) -> None:
    """A ValueError naming the labels of ``y`` that are not among ``classes``."""
    unseen = np.setdiff1d(np.unique(np.asarray(y)), classes)
    if len(unseen):
        raise ValueError(f"y has labels never seen in fit: {unseen[:10].tolist()}; the classes are {classes.tolist()}")


def encode_labels(y, classes: np.ndarray) -> np.ndarray:
    """``y`` as int64 indices into ``classes`` (labels outside them are a ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.finetune._labels import encode_labels
    >>> encode_labels(["bee", "ant", "bee"], np.array(["ant", "bee"])).tolist()
    [1, 0, 1]
    """
    check_known_labels(y, classes)
    position = {label: i for i, label in enumerate(classes.tolist())}
    return np.array([position[label] for label in np.asarray(y).tolist()], dtype=np.int64)

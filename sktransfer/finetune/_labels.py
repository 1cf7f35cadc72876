"""Labels of any type for a skorch classifier: classes, class weights, encoding.

skorch's ``NeuralNetClassifier`` expects class indices; scikit-learn users
pass strings, objects or numbers. :class:`LabelEncodingMixin` keeps the
original labels in ``classes_`` (or takes skorch's ``classes`` parameter, for
resuming), checks them, turns ``class_weight`` into one weight per class and
encodes ``y`` as indices for the network.
"""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.class_weight import compute_class_weight

from ..image._validation import check_image_labels

__all__ = ["LabelEncodingMixin"]


class LabelEncodingMixin:
    """Original labels in and out, class indices inside (see the module docstring).

    The host sets ``classes`` (skorch's parameter, None to infer) and
    ``class_weight`` (None, ``"balanced"`` or a dict).
    """

    def _encode_labels(self, y, n_samples, *, new_classes):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = check_image_labels(y, n_samples)
        if new_classes:
            classes = np.unique(y) if self.classes is None else np.asarray(self.classes)
            if self.classes is not None:
                self.classes_inferred_ = classes
                self._check_known_labels(y)
            if len(classes) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got 1 class: {classes[0]!r}")
            self.classes_inferred_ = classes
            self.class_weight_ = self._class_weights(classes, y)
        else:
            self._check_known_labels(y)
        position = {label: i for i, label in enumerate(self.classes_.tolist())}
        return np.array([position[label] for label in np.asarray(y).tolist()], dtype=np.int64)

    def _class_weights(self, classes, y):
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced":
            return compute_class_weight("balanced", classes=classes, y=y)
        unknown = set(self.class_weight) - set(classes.tolist())
        if unknown:
            raise ValueError(f"class_weight has labels that are not in y: {sorted(map(str, unknown))}")
        return np.array([float(self.class_weight.get(c, 1.0)) for c in classes])

    def _check_known_labels(self, y):
        unseen = np.setdiff1d(np.unique(np.asarray(y)), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y has labels never seen in fit: {unseen[:10].tolist()}; the classes are {self.classes_.tolist()}"
            )

    @property
    def classes_(self):
        # skorch's ``classes`` parameter fixes the classes (and their order)
        # before fit, e.g. to initialize() and load_params() for a resume.
        if self.classes is not None:
            return np.asarray(self.classes)
        if not hasattr(self, "classes_inferred_"):
            # NotFittedError is an AttributeError too: hasattr() keeps working.
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet and knows no classes: "
                "call fit, or pass classes=[...] to set them before initialize() or load_params()"
            )
        return self.classes_inferred_

"""FrozenFeatureClassifier: a classifier on frozen embeddings of augmented views.

A scikit-learn Pipeline cannot train on augmented copies of its images: a
transformer maps n samples to n rows, and only the classifier sees ``y``.
This meta-estimator embeds each training image and several random views of
it, and fits the classifier on all of them with the labels repeated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from numbers import Integral
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, has_fit_parameter

from ..image import load_image
from ..image._transforms import ResizeCenterCrop, random_resized_crop_flip
from ..image._validation import ImageInputMixin, check_image_labels
from ..utils._progress import Progress
from ._view_cv import cross_validate_views

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .._typing import Estimator, ImageCollection, RandomStateLike
    from ._extractor import PretrainedFeatureExtractor

#: Views embedded per call to the extractor: bounds the PIL images held at once.
_VIEWS_PER_CHUNK = 256


def _classifier_has(method):
    """``available_if`` check: the fitted classifier, else the one given, has ``method``."""

    def check(self):
        classifier = getattr(self, "classifier_", None)
        if classifier is None:
            classifier = self._make_classifier()
        getattr(classifier, method)  # the AttributeError names the classifier's class
        return True

    return check


def _views_generator(random_state):
    """A numpy Generator from ``random_state``, without drawing from the global generator.

    None gives fresh OS entropy (scikit-learn's ``check_random_state(None)``
    would draw from, and so move, numpy's global generator); an int seeds;
    a RandomState (the caller's own) gives one draw.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**32, dtype=np.uint64))
    return np.random.default_rng(int(random_state))


def _source_side(extractor):
    """Largest side the views need: twice the largest resize of the fitted backbones, or None.

    The extractor resizes every view's shorter side to its ``resize_size``;
    a source image twice that size keeps even a crop of a third of its area
    above it, while a camera photo is decoded (JPEG draft mode) and held at
    a fraction of its size. None (no backbone found): full size.
    """
    candidates = [extractor, *extractor.get_params(deep=True).values()]
    sizes = [
        est.backbone_.preprocessing.resize_size
        for est in candidates
        if isinstance(est, BaseEstimator) and hasattr(est, "backbone_")
    ]
    return 2 * max(sizes) if sizes else None


#: The backbones of the default extractor, concatenated (``FeatureUnion``).
DEFAULT_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def default_extractor():
    """The extractor of ``FrozenFeatureClassifier()``: Lite0, Lite1 and Lite2 embeddings side by side.

    The three EfficientNet-Lites, concatenated, over Lite2 alone (the
    previous default): chosen on a 100-class development set (a
    CUB-200-2011 subset, not one the targets are measured on), where the
    union was 5 points more accurate at 1, 2 and 5 images per class, at
    about twice Lite2's embedding time (benchmarks/fewshot.py). Each
    backbone resizes and crops the images its own way.
    """
    from sklearn.pipeline import FeatureUnion

    from ._extractor import PretrainedFeatureExtractor

    return FeatureUnion([(name, PretrainedFeatureExtractor(model=name)) for name in DEFAULT_BACKBONES])


class FrozenFeatureClassifier(ImageInputMixin, ClassifierMixin, BaseEstimator):
    """A classifier on frozen embeddings of each training image, and optionally of random views of it.

    The library's recipe for few labelled images: by default the embeddings
    of three pretrained networks side by side and a head that fits the
    number of images per class. Embedding ``n_views`` random crops and
    flips of each training image as well gives the classifier that many
    more samples of each class, showing which directions of the embedding
    do not matter (framing, scale, mirroring); whether that helps depends
    on the data (it did on flowers and hurt on fine-grained birds, whose
    crops cut off what tells the classes apart), so it is off by default.
    The network stays frozen: the cost is ``n_views + 1`` embeddings per
    training image at fit, and none extra at prediction, where each image
    is embedded once, centre-cropped.

    Parameters
    ----------
    extractor : transformer or None, default=None
        Images in, embeddings out: a
        :class:`~sktransfer.PretrainedFeatureExtractor`, or any transformer
        taking a list of RGB PIL images, such as a ``FeatureUnion`` of
        extractors (concatenated embeddings of several backbones) or a
        ``Pipeline`` ending in a scaler. None: a ``FeatureUnion`` of
        EfficientNet-Lite0, Lite1 and Lite2 extractors with their ImageNet
        weights (3,840 features; about twice Lite2's time per image). Cloned
        at fit.
    classifier : classifier or None, default=None
        Fitted on the embeddings; None:
        :class:`~sktransfer.feature_extraction.FewShotLinearClassifier` (a
        logistic regression at ``C=30`` on power-normalised, centred, unit-length
        embeddings).
        Cloned at fit. A classifier whose ``fit`` takes ``groups`` gets the
        index of each row's image, so that an image counts once as a shot
        and its views stay in one fold of any internal cross-validation.
    n_views : int, default=0
        Random views per training image. 0: a plain extractor + classifier.
        The default was chosen on the development set that chose the
        backbones (100 bird classes), where 8 views lost 3 points at 5
        images per class with the default extractor; on flowers they gain
        1 to 2 points (the user guide has the figures). ``cv`` measures it
        on your data.
    augment : "light" or callable, default="light"
        How a view is drawn from an RGB PIL image. ``"light"``: a random
        resized crop covering 35-100% of the area with an aspect ratio in
        [3/4, 4/3], a square of the image's shorter side, mirrored with
        probability 1/2. A callable takes a PIL image and returns a PIL image.
        Views stay in image space: the extractor then resizes and
        centre-crops them as it does any image.
    keep_original : bool, default=True
        Fit on the centre-crop embedding of each training image too.
    cv : int, cross-validation generator, iterable or None, default=None
        Also estimate, at fit, the accuracy of this recipe on new images by
        cross-validation over the training images (``cv_scores_``), at the
        cost of fitting the classifier once per split: the embeddings are
        computed once, not once per split as
        :func:`~sklearn.model_selection.cross_val_score` would. Splits are
        of images (an int: stratified k-fold; or any splitter or list of
        ``(train, test)`` image indices, as for
        :func:`~sklearn.model_selection.check_cv`): the views of an image
        stay with it, and a held-out image is scored on its centre-crop
        embedding, as :meth:`predict` sees it. Needs ``keep_original=True``.
    random_state : int, RandomState instance or None, default=None
        Seeds the views: the same seed gives the same views, hence the same
        classifier (for a deterministic classifier). A callable ``augment``
        runs with torch's generator forked and seeded from it, so
        torchvision transforms are reproducible too.
    verbose : int, default=0
        1: at fit, one line per step (the training images embedded, each
        chunk of up to 256 views, the classifier fitted) with its time, on
        stderr; a bar on a terminal.

    Attributes
    ----------
    extractor_ : transformer
        The fitted clone of ``extractor``.
    classifier_ : classifier
        The fitted clone of ``classifier``.
    classes_ : ndarray
        The classifier's classes.
    cv_scores_ : dict or None
        With ``cv``: the held-out ``accuracy`` and ``log_loss`` (NaN for a
        classifier without ``predict_proba``) over every split's held-out
        images, and ``n_splits``. None without ``cv``.
    cv_predictions_ : ndarray of shape (n_images,) or None
        With ``cv`` whose splits hold out every training image exactly once
        (k-fold): each image's label as predicted by the split that held it
        out, as :func:`~sklearn.model_selection.cross_val_predict` gives
        them (for a confusion matrix, or to compare with another model
        image by image). None otherwise.
    n_features_in_ : int
        Only when fitted on a numeric table of flattened images.

    See Also
    --------
    sktransfer.FineTuneClassifier : trains the network too, with the same
        augmentation.

    Notes
    -----
    Training images are decoded once each, in chunks of up to 256 views, so
    memory does not grow with their number. When the extractor's backbones
    are known, images larger than twice their largest resize size are
    reduced to that before cropping (JPEGs are decoded at reduced scale).
    Rows of a numeric table are read as flattened images with the
    extractor's ``image_shape`` ("auto" when it has none). Without
    ``random_state`` the global random generators are never used; with a
    callable ``augment``, torch's is forked and restored around it. ``fit``
    forwards ``sample_weight``, repeated for each view, to a classifier
    that accepts it.

    Every training image must be readable: the views are decoded here, and
    an unreadable image raises ``ImageLoadError`` naming it whatever the
    extractor's ``on_error``. With an integer ``random_state``, an extractor
    with a ``cache`` stores the views' embeddings too, and a refit on the
    same images reads them instead of computing them. Otherwise the views
    are new at every fit and never looked up again, so they are embedded
    without the store (which keeps only the centre crops).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FrozenFeatureClassifier, PretrainedFeatureExtractor
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    >>> y = np.array([0, 1, 0, 1, 0, 1])
    >>> clf = FrozenFeatureClassifier(
    ...     extractor=PretrainedFeatureExtractor(model="tiny_convnet", weights=None),
    ...     n_views=2, random_state=0,
    ... ).fit(images, y)
    >>> clf.predict(images).shape, clf.classes_.tolist()
    ((6,), [0, 1])
    """

    _parameter_constraints = {
        "extractor": [HasMethods(["fit", "transform"]), None],
        "classifier": [HasMethods(["fit", "predict"]), None],
        "n_views": [Interval(Integral, 0, None, closed="left")],
        "augment": [StrOptions({"light"}), callable],
        "keep_original": ["boolean"],
        "cv": ["cv_object", None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        extractor: PretrainedFeatureExtractor | None = None,
        classifier: Estimator | None = None,
        n_views: int = 0,
        augment: Literal["light"] | Callable | None = "light",
        keep_original: bool = True,
        cv: int | object | None = None,
        random_state: RandomStateLike = None,
        verbose: int = 0,
    ) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.n_views = n_views
        self.augment = augment
        self.keep_original = keep_original
        self.cv = cv
        self.random_state = random_state
        self.verbose = verbose

    @property
    def image_shape(self) -> Literal["auto"] | tuple[int, ...]:
        """Layout of a numeric table's rows: the extractor's ``image_shape``, else "auto"."""
        return getattr(self.extractor, "image_shape", "auto")

    def _make_extractor(self):
        if self.extractor is None:
            return default_extractor()
        return clone(self.extractor)

    def _make_classifier(self):
        if self.classifier is None:
            from ._few_shot_head import FewShotLinearClassifier

            return FewShotLinearClassifier()
        return clone(self.classifier)

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ImageCollection, y: ArrayLike, sample_weight: ArrayLike | None = None) -> FrozenFeatureClassifier:
        """Embed the images and their views, and fit the classifier on them.

        Parameters
        ----------
        X : images
            Paths, PIL images, arrays, a pandas Series or one-column DataFrame,
            a 4-D array or tensor, or a numeric table of flattened images.
        y : array-like of shape (n_samples,)
            Labels (at least two classes).
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Repeated for each view of an image; needs a classifier whose
            ``fit`` takes ``sample_weight``.

        Returns
        -------
        self
        """
        if self.n_views == 0 and not self.keep_original:
            raise ValueError(
                "n_views=0 with keep_original=False leaves nothing to fit on; set n_views >= 1 or keep_original=True"
            )
        if self.cv is not None and not self.keep_original:
            raise ValueError(
                "cv scores each held-out image on its centre-crop embedding, which keep_original=False "
                "does not compute; set keep_original=True or cv=None"
            )
        items = self._validate_images(X, reset=True)
        y = self._check_labels(y, len(items))
        classifier = self._make_classifier()
        fit_params = {}
        if sample_weight is not None:
            if not has_fit_parameter(classifier, "sample_weight"):
                raise TypeError(
                    f"sample_weight was given, but {type(classifier).__name__}.fit does not take sample_weight"
                )
            sample_weight = _check_sample_weight(sample_weight, items)
        extractor = self._make_extractor()
        extractor.fit(items, y)
        n_view_chunks = -(-len(items) // self._images_per_chunk()) if self.n_views > 0 else 0
        n_steps = int(self.keep_original) + n_view_chunks + int(self.cv is not None) + 1
        progress = Progress(self.verbose, type(self).__name__, total=n_steps)
        blocks, labels, weights = [], [], []
        if self.keep_original:
            blocks.append(np.asarray(extractor.transform(items)))
            progress.step(f"embedded {len(items)} training images")
            labels.append(y)
            weights.append(sample_weight)
        if self.n_views > 0:
            blocks.append(self._embed_views(extractor, items, progress))
            labels.append(np.repeat(y, self.n_views))
            weights.append(None if sample_weight is None else np.repeat(sample_weight, self.n_views))
        if sample_weight is not None:
            fit_params["sample_weight"] = np.concatenate(weights)
        image_index = np.arange(len(items))
        row_image = np.concatenate(
            [*([image_index] if self.keep_original else []), np.repeat(image_index, self.n_views)]
        )
        if has_fit_parameter(classifier, "groups"):
            # The rows of an image and of its views are one group, so that a
            # classifier cross-validating internally keeps them in one fold.
            fit_params["groups"] = row_image
        rows, row_labels = np.concatenate(blocks), np.concatenate(labels)
        self.cv_scores_, self.cv_predictions_ = None, None
        if self.cv is not None:
            self.cv_scores_, self.cv_predictions_ = cross_validate_views(
                classifier, self.cv, rows, row_labels, row_image, y, fit_params
            )
            progress.step(f"cross-validated {type(classifier).__name__}, {self.cv_scores_['n_splits']} splits")
        classifier.fit(rows, row_labels, **fit_params)
        progress.step(f"fitted {type(classifier).__name__}")
        progress.close()
        self.extractor_ = extractor
        self.classifier_ = classifier
        self.classes_ = classifier.classes_
        return self

    def _check_labels(self, y, n_images):
        if y is None:
            raise ValueError(f"{type(self).__name__} is a classifier: fit needs labels y")
        y = check_image_labels(y, n_images)
        if len(np.unique(y)) < 2:
            raise ValueError(f"y has a single class ({np.asarray(y[0]).tolist()!r}); a classifier needs at least two")
        return y

    def _draw_view(self, image, rng):
        if self.augment == "light":
            return random_resized_crop_flip(image, rng)
        view = self.augment(image)
        if not isinstance(view, Image.Image):
            raise TypeError(f"augment must return a PIL image, got {type(view).__name__}")
        return view.convert("RGB")

    def _images_per_chunk(self):
        return max(1, _VIEWS_PER_CHUNK // max(self.n_views, 1))

    def _embed_views(self, extractor, items, progress):
        """Embeddings of ``n_views`` views of every image, image by image, view by view.

        Images are decoded and their views embedded one chunk at a time:
        only one chunk's views exist as PIL images at once.
        """
        rng = _views_generator(self.random_state)
        if not isinstance(self.random_state, Integral) and extractor.get_params().get("cache") is not None:
            # Views drawn afresh at every fit are never read back: storing
            # them would only grow the store, by n_views rows per image.
            extractor = copy.copy(extractor).set_params(cache=None)
        side = _source_side(extractor)
        draft = None if side is None else (side, side)
        shrink = None if side is None else ResizeCenterCrop(side, side).resize
        per_chunk = self._images_per_chunk()
        blocks = []
        for start in range(0, len(items), per_chunk):
            views = []
            # A callable augment may draw from torch's global generator (as
            # torchvision's transforms do): fork it, seeded from our own
            # generator, so the views are reproducible and the caller's
            # generator state is restored.
            with torch.random.fork_rng(devices=[], enabled=self.augment != "light"):
                if self.augment != "light":
                    torch.manual_seed(int(rng.integers(2**63)))
                for index in range(start, min(start + per_chunk, len(items))):
                    image = load_image(items[index], draft_size=draft)
                    if shrink is not None and min(image.size) > side:
                        image = shrink(image)
                    views.extend(self._draw_view(image, rng) for _ in range(self.n_views))
            blocks.append(np.asarray(extractor.transform(views)))
            progress.step(f"embedded {len(views)} views")
        return np.concatenate(blocks)

    # ------------------------------------------------------------- predict

    def _embed(self, X):
        check_is_fitted(self, "classifier_")
        return self.extractor_.transform(self._validate_images(X, reset=False))

    def predict(self, X: ImageCollection) -> np.ndarray:
        """Predict the class of each image (embedded once, centre-cropped).

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        embeddings = self._embed(X)
        return self.classifier_.predict(embeddings)

    @available_if(_classifier_has("predict_proba"))
    def predict_proba(self, X: ImageCollection) -> np.ndarray:
        """Class probabilities of each image.

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        embeddings = self._embed(X)
        return self.classifier_.predict_proba(embeddings)

    @available_if(_classifier_has("decision_function"))
    def decision_function(self, X: ImageCollection) -> np.ndarray:
        """The classifier's decision function on each image's embedding.

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        embeddings = self._embed(X)
        return self.classifier_.decision_function(embeddings)

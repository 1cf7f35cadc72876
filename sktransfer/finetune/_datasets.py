"""Training and prediction data for fine-tuning: decoded once, augmented per epoch.

Decoding a JPEG costs about as much as a small network's forward pass on a
CPU, so :class:`FineTuneClassifier` decodes every training image exactly
once per ``fit`` and keeps the result in memory:

* without augmentation, the final uint8 crops (what the network sees);
* with augmentation, the images resized to the backbone's ``resize_size``
  (the shorter side, or as its ``crop_mode`` says): random crops are drawn
  from those, and the centre crop of such an image *is* the evaluation crop
  (the resize leaves an image of its result size alone).

The frozen prefix's activations on top of that live in
:mod:`._activation_cache`. :func:`training_dataset` turns the training
images into the :class:`TrainingDataset` skorch iterates over.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from skorch.utils import is_dataset
from torch.utils.data import Dataset

from ..image import decode_all, resolve_num_workers
from ..image._transforms import ResizeCenterCrop, pil_to_chw
from ._activation_cache import ActivationCache, shared_key
from ._fit_memo import FIT_MEMO


class LightAugment:
    """The usual light augmentation: random resized crop and horizontal flip.

    Parameters
    ----------
    crop_size : int
        Output side, the backbone's crop size.
    scale : tuple of float, default=(0.35, 1.0)
        Range of the crop's area as a fraction of the image's area.
    """

    def __init__(self, crop_size: int, scale: tuple[float, float] = (0.35, 1.0)) -> None:
        from torchvision.transforms import v2

        self.crop_size = int(crop_size)
        self.scale = tuple(scale)
        self._transform = v2.Compose(
            [v2.RandomResizedCrop(self.crop_size, scale=self.scale, antialias=True), v2.RandomHorizontalFlip()]
        )

    def __call__(self, img: Image.Image) -> Image.Image:
        return self._transform(img)

    def __repr__(self) -> str:
        return f"LightAugment(crop_size={self.crop_size}, scale={self.scale})"


def to_crop_tensor(out, crop_size: int, what: str = "augment") -> torch.Tensor:
    """Coerce an augmentation's output (PIL, HWC array or CHW tensor) to uint8 CHW of the crop size."""
    if isinstance(out, Image.Image):
        out = out.convert("RGB")
        if out.size != (crop_size, crop_size):
            out = ResizeCenterCrop(crop_size, crop_size)(out)
            return out
        return pil_to_chw(out)
    if isinstance(out, np.ndarray) and out.ndim == 3 and out.shape[-1] == 3:
        out = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)
    if isinstance(out, torch.Tensor) and out.ndim == 3 and out.shape[0] == 3:
        if out.dtype != torch.uint8:
            raise ValueError(f"{what} returned a {out.dtype} tensor; return a PIL image or a uint8 tensor")
        if tuple(out.shape[1:]) != (crop_size, crop_size):
            raise ValueError(
                f"{what} returned an image of size {tuple(out.shape[1:])}; the backbone needs "
                f"{crop_size}x{crop_size} (return a PIL image to have it centre-cropped)"
            )
        return out.contiguous()
    raise TypeError(
        f"{what} must return an RGB PIL image, an HWC uint8 array or a CHW uint8 tensor, got {type(out).__name__}"
    )


class DecodedImages:
    """Training images decoded once, plus the activation cache.

    Parameters
    ----------
    images : torch.Tensor or list of PIL.Image.Image
        uint8 crops (n, 3, crop, crop) when ``augment`` is None, else images
        resized to the backbone's ``resize_size`` (the shorter side, or as its ``crop_mode`` says).
    crop : ResizeCenterCrop
        The evaluation crop (a no-op resize on the stored images).
    augment : callable or None
        PIL image -> augmented image, for training batches.
    memo_key : hashable or None
        What the activation cache may share with other fits.
    """

    def __init__(self, images, crop: ResizeCenterCrop, augment: Callable | None = None, memo_key=None) -> None:
        self.images = images
        self.crop = crop
        self.augment = augment
        self.cache = ActivationCache(memo_key)

    def __len__(self) -> int:
        return len(self.images)

    def eval_item(self, index: int) -> torch.Tensor:
        """The evaluation crop of stored image ``index``, uint8 CHW."""
        if isinstance(self.images, torch.Tensor):
            return self.images[index]
        return self.crop(self.images[index])

    def train_item(self, index: int) -> torch.Tensor:
        """The training crop of stored image ``index`` (augmented when ``augment`` is set), uint8 CHW."""
        if self.augment is None:
            return self.eval_item(index)
        return to_crop_tensor(self.augment(self.images[index]), self.crop.crop_size)


def decode_training_images(
    items: list, preprocessing, *, augment: Callable | None = None, num_workers: int = 0, memo_key=None
) -> DecodedImages:
    """Decode every item once (threads), for training.

    Parameters
    ----------
    items : list
        Items from ``check_images``.
    preprocessing : Preprocessing
        The backbone's preprocessing.
    augment : callable or None
        When None, the final crops are kept as one uint8 tensor; otherwise the
        resized images are kept as PIL images for random cropping.
    num_workers : int
        Decoding threads.
    memo_key : hashable or None
        Identity of the items and the pretrained network in the fit memo (see
        ``_activation_cache.shared_key``);
        None shares nothing with other fits.

    Returns
    -------
    DecodedImages
    """
    crop = preprocessing.pil_transform()
    if augment is None:
        key = None if memo_key is None else ("images", memo_key)
        images = FIT_MEMO.get(key)
        if images is None:
            images, _ = decode_all(items, crop, num_workers=num_workers, draft_size=crop.draft_size)
            FIT_MEMO.put(key, images)
        return DecodedImages(images, crop, memo_key=memo_key)
    # Keep the resized images: random crops are drawn from them each epoch,
    # and their centre crop is the evaluation crop.
    resized, _ = decode_all(items, crop.resize, num_workers=num_workers, draft_size=crop.draft_size, stack=False)
    return DecodedImages(resized, crop, augment)


class TrainingDataset(Dataset):
    """A view of :class:`DecodedImages` for skorch: (input, label) pairs.

    The input is the cached activation when the cache is filled, else the
    augmented crop (``train=True``) or the evaluation crop.
    """

    def __init__(self, images: DecodedImages, y, indices=None, train: bool = False) -> None:
        self.images = images
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.long)
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self.train = train

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(self.indices[i])
        cache = self.images.cache
        if cache.active is not None:
            x = cache.values[cache.active][index]
        elif self.train:
            x = self.images.train_item(index)
        else:
            x = self.images.eval_item(index)
        return x, self.y[index]

    def view(self, indices, train: bool) -> TrainingDataset:
        """The same storage restricted to ``indices`` (positions in this view)."""
        return TrainingDataset(self.images, self.y, self.indices[np.asarray(indices)], train)


def reject_user_dataset(X, method: str) -> None:
    """A TypeError for a torch Dataset the user passed as ``X`` to ``method``."""
    # Datasets of our own (the validation split) pass; a user's does not:
    # its items would bypass the image checks, decoding and label encoding.
    if is_dataset(X) and not isinstance(X, TrainingDataset):
        raise TypeError(
            f"FineTuneClassifier.{method} takes images (paths, PIL images, arrays, a 4-D array or "
            f"tensor, a pandas Series) and labels, not a torch Dataset ({type(X).__name__}); "
            "pass the images and labels the dataset holds"
        )


def training_dataset(
    items: list, y_encoded, network, *, augment, num_workers: int | str, network_identity: Callable
) -> TrainingDataset:
    """The training images, decoded once, with their class indices.

    Parameters
    ----------
    items : list
        Items from ``check_images``.
    y_encoded : ndarray of shape (n_samples,)
        Class indices.
    network : FineTuneNetwork
        The network to train: its backbone's preprocessing decodes the
        images, and whether it is still pretrained decides what the fit memo
        may share (``_activation_cache.shared_key``).
    augment : None, "light" or callable
        The estimator's ``augment`` parameter.
    num_workers : int or "auto"
        Decoding threads.
    network_identity : callable
        Returns the identity of the pretrained weights (or None); called only
        when the fit memo could share something.

    Returns
    -------
    TrainingDataset
    """
    preprocessing = network.backbone.preprocessing
    if augment == "light":
        augment = LightAugment(preprocessing.crop_size)
    images = decode_training_images(
        items,
        preprocessing,
        augment=augment,
        num_workers=resolve_num_workers(num_workers),
        memo_key=shared_key(network, network_identity, items),
    )
    return TrainingDataset(images, y_encoded)

"""Training data for fine-tuning: decoded once, augmented per epoch, or cached.

Decoding a JPEG costs about as much as a small network's forward pass on a
CPU, so :class:`FineTuneClassifier` decodes every training image exactly
once per ``fit`` and keeps the result in memory:

* without augmentation, the final uint8 crops (what the network sees);
* with augmentation, the images resized so that their shorter side is the
  backbone's ``resize_size``: random crops are drawn from those, and the
  centre crop of such an image *is* the evaluation crop.

On top of that, :class:`ActivationCache` holds the output of the frozen
prefix of the network for every training image: with nothing random before
the first trainable layer group (no augmentation, frozen groups in eval
mode), that output is the same every epoch, so the prefix runs once.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..image._decode import load_image
from ..image._batch_decoder import decode_all, item_source
from ..image._transforms import ResizeCenterCrop, pil_to_chw

# Activations are cached only while they fit in this many bytes; beyond it the
# prefix is recomputed every epoch (slower, never out of memory).
MAX_CACHE_BYTES = 2 * 1024**3


class LightAugment:
    """The usual light augmentation: random resized crop and horizontal flip.

    Parameters
    ----------
    crop_size : int
        Output side, the backbone's crop size.
    scale : tuple of float, default=(0.35, 1.0)
        Range of the crop's area as a fraction of the image's area.
    """

    def __init__(self, crop_size, scale=(0.35, 1.0)):
        from torchvision.transforms import v2

        self.crop_size = int(crop_size)
        self.scale = tuple(scale)
        self._transform = v2.Compose(
            [v2.RandomResizedCrop(self.crop_size, scale=self.scale, antialias=True), v2.RandomHorizontalFlip()]
        )

    def __call__(self, img):
        return self._transform(img)

    def __repr__(self):
        return f"LightAugment(crop_size={self.crop_size}, scale={self.scale})"


def to_crop_tensor(out, crop_size, what="augment"):
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
        f"{what} must return an RGB PIL image, an HWC uint8 array or a CHW uint8 tensor, "
        f"got {type(out).__name__}"
    )


class FitMemo:
    """Process-wide LRU of what fits on the same images can share.

    A grid search fits many clones on the same training folds: each decodes
    the same images and runs the same pretrained frozen prefix over them.
    Entries are keyed by the images (their paths) and, for activations, by
    the pretrained weights and the entry position, so they are only shared
    between fits that would compute exactly the same tensors. Stored tensors
    are never modified in place.
    """

    def __init__(self, max_entries=32):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self.hits = 0

    def get(self, key):
        if key is None or key not in self._entries:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return self._entries[key]

    def put(self, key, value):
        if key is None:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self):
        self._entries.clear()
        self.hits = 0


FIT_MEMO = FitMemo()


def paths_key(items):
    """A hashable identity for a list of image paths (None if any item is not a path)."""
    if not all(isinstance(i, (str, os.PathLike)) for i in items):
        return None
    files = [os.fspath(i) for i in items]
    # Size and mtime: a file rewritten between fits is not the same image.
    try:
        stats = [(st.st_size, st.st_mtime_ns) for st in map(os.stat, files)]
    except OSError:
        return None
    return tuple(zip(files, stats))


class DecodedImages:
    """Training images decoded once, plus the activation cache.

    Parameters
    ----------
    images : torch.Tensor or list of PIL.Image.Image
        uint8 crops (n, 3, crop, crop) when ``augment`` is None, else images
        resized to the backbone's ``resize_size`` on their shorter side.
    crop : ResizeCenterCrop
        The evaluation crop (a no-op resize on the stored images).
    augment : callable or None
        PIL image -> augmented image, for training batches.
    """

    def __init__(self, images, crop, augment=None, memo_key=None):
        self.images = images
        self.crop = crop
        self.augment = augment
        self.cache = ActivationCache(memo_key)

    def __len__(self):
        return len(self.images)

    def eval_item(self, index):
        if isinstance(self.images, torch.Tensor):
            return self.images[index]
        return self.crop(self.images[index])

    def train_item(self, index):
        if self.augment is None:
            return self.eval_item(index)
        return to_crop_tensor(self.augment(self.images[index]), self.crop.crop_size)


def decode_training_images(items, preprocessing, *, augment=None, num_workers=0, memo_key=None):
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
        Identity of the items and the pretrained network in :data:`FIT_MEMO`;
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
    resized, _ = decode_all(items, crop.resize, num_workers=num_workers, draft_size=crop.draft_size,
                            stack=False)
    return DecodedImages(resized, crop, augment)


class ActivationCache:
    """Frozen-prefix outputs for every stored image, keyed by entry position.

    ``values[start]`` is what the network receives at ``start`` (see
    ``FineTuneNetwork.input_start``) for each stored image; ``active`` is the
    position the training batches currently come from (None: images).
    """

    def __init__(self, memo_key=None):
        self.values = {}
        self.active = None
        self.memo_key = memo_key

    def clear(self):
        self.values, self.active = {}, None

    @torch.no_grad()
    def fill(self, network, images, start, *, device, batch_size, source=None):
        """Cache the input at ``start``, computed from images or from cached ``source``.

        Computing from a cached later-than-images position (e.g. the embedding
        from the phase-2 activations) runs only the part in between. Returns
        False, caching nothing, when it would exceed :data:`MAX_CACHE_BYTES`.
        """
        if start in self.values:
            return True
        memo_key = None if self.memo_key is None else ("activations", self.memo_key, start)
        shared = FIT_MEMO.get(memo_key)
        if shared is not None:
            self.values[start] = shared
            return True
        from_cache = source is not None and source in self.values
        src = source if from_cache else None
        # On the way to ``start``, also keep the inputs of the few groups just
        # before it, for other fits of a grid: a fit unfreezing one group
        # more starts there. (Small tensors: late feature maps.)
        order = network._positions()
        extra = []
        if self.memo_key is not None and FIT_MEMO.max_entries > 0:
            extra = [p for p in order[order.index(src) + 1 : order.index(start)] if p in network.backbone.groups]
            extra = extra[-3:]
        stops = extra + [start]

        def batch_of(lo, hi):
            if from_cache:
                return self.values[source][lo:hi].to(device)
            return torch.stack([images.eval_item(i) for i in range(lo, hi)]).to(device)

        def run(x):
            outs, prev = [], src
            for stop in stops:
                x = network.forward_between(x, prev, stop)
                outs.append(x)
                prev = stop
            return outs

        was_training = network.training
        network.eval()
        try:
            firsts = run(batch_of(0, 1))
            sizes = [f.element_size() * f.numel() * len(images) for f in firsts]
            if sizes[-1] > MAX_CACHE_BYTES:
                return False
            outs = [torch.empty((len(images),) + tuple(f.shape[1:]), dtype=f.dtype) for f in firsts]
            for lo in range(0, len(images), batch_size):
                hi = min(lo + batch_size, len(images))
                for out, value in zip(outs, run(batch_of(lo, hi))):
                    out[lo:hi] = value.cpu()
        finally:
            network.train(was_training)
        self.values[start] = outs[-1]
        FIT_MEMO.put(memo_key, outs[-1])
        for stop, out, size in zip(extra, outs, sizes):
            if size <= MAX_CACHE_BYTES // 8:
                FIT_MEMO.put(("activations", self.memo_key, stop), out)
        return True


class TrainingDataset(Dataset):
    """A view of :class:`DecodedImages` for skorch: (input, label) pairs.

    The input is the cached activation when the cache is filled, else the
    augmented crop (``train=True``) or the evaluation crop.
    """

    def __init__(self, images, y, indices=None, train=False):
        self.images = images
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.long)
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self.train = train

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = int(self.indices[i])
        cache = self.images.cache
        if cache.active is not None:
            x = cache.values[cache.active][index]
        elif self.train:
            x = self.images.train_item(index)
        else:
            x = self.images.eval_item(index)
        return x, self.y[index]

    def view(self, indices, train):
        """The same storage restricted to ``indices`` (positions in this view)."""
        return TrainingDataset(self.images, self.y, self.indices[np.asarray(indices)], train)


class PredictionDataset(Dataset):
    """Images decoded lazily, one per item, with the evaluation crop."""

    def __init__(self, items, preprocessing):
        self.items = items
        self.crop = preprocessing.pil_transform()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        img = load_image(item, source=item_source(item, i), draft_size=self.crop.draft_size)
        return self.crop(img), torch.tensor(0)

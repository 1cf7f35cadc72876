"""Image preprocessing split in two: per-image resize/crop, per-batch normalise.

Resizing and cropping happen in the decoding workers and yield uint8
tensors; normalisation happens once per batch, on the device that runs the
network. uint8 batches are 4x smaller to move around than float ones, and
the result equals ``ToTensor()`` + ``Normalize`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image

_PIL_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def _resized_size(width, height, size):
    """Size after resizing the shorter side to ``size`` (torchvision's rule)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


# Filters resized on the uint8 tensor rather than in PIL. torch's antialiased
# bilinear kernel (the one torchvision's resize calls) works on uint8 pixels
# directly, faster than PIL and without holding the GIL, and stays within one
# level of PIL's result (the pixels of torchvision's PIL-based Resize) on
# nearly every value; its bicubic kernel is off by two levels far more
# often, so bicubic and nearest stay in PIL.
_TENSOR_FILTERS = frozenset({"bilinear"})


#: timm's eval crop modes (``transforms_imagenet_eval``): how the image is
#: brought to ``resize_size`` before the centre crop.
CROP_MODES = ("center", "squash", "border")


def _mode_size(width, height, size, crop_mode):
    """(width, height) after the resize of ``crop_mode`` to ``size``.

    center: the shorter side to ``size`` (aspect kept, torchvision's rule);
    squash: both sides to ``size`` (aspect changed, timm's ``Resize((s, s))``);
    border: the longer side to ``size`` (aspect kept, timm's
    ``ResizeKeepRatio(s, longest=1)`` with its rounding).
    """
    if crop_mode == "squash":
        return size, size
    if crop_mode == "border":
        ratio = max(height / size, width / size)
        return round(width / ratio), round(height / ratio)
    return _resized_size(width, height, size)


def _padded(width, height, crop):
    """A canvas at least ``crop`` on each side: (width, height, left, top) of the image on it."""
    canvas_width, canvas_height = max(width, crop), max(height, crop)
    return canvas_width, canvas_height, (canvas_width - width) // 2, (canvas_height - height) // 2


def _crop_origin(width, height, crop):
    """(left, top) of a centred square of side ``crop`` (torchvision's rounding)."""
    return int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))


def pil_to_chw(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> uint8 CHW tensor."""
    return _pil_to_planar_view(img).contiguous()


def _pil_to_planar_view(img):
    """RGB PIL image -> uint8 tensor indexed (C, H, W) over the pixels' HWC memory.

    No transposing copy: the resize kernel reads channels-last memory as is.
    """
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


class ResizeCenterCrop:
    """Resize, centre-crop a square, return a uint8 CHW tensor.

    With ``crop_mode="center"``, the geometry of
    ``torchvision.transforms.Resize(resize_size, interpolation,
    antialias=True)`` followed by ``CenterCrop(crop_size)``. timm's other
    eval crop modes: ``"squash"`` resizes both sides to ``resize_size``
    (aspect ratio not kept) then centre-crops; ``"border"`` resizes the
    longer side to ``resize_size`` then centre-crops or pads with ``fill``
    (timm's ``ResizeKeepRatio(longest=1)`` + ``CenterCropOrPad``).
    Calling the transform resizes bilinear images as uint8 tensors
    (torchvision's antialiased uint8 kernel, faster than PIL): a few values
    differ from PIL's, by one level (rarely two). Bicubic and nearest resize in PIL. :meth:`resize_crop`
    always works in PIL, for pipelines that go on with PIL images.

    Parameters
    ----------
    resize_size : int
        Target of the shorter side.
    crop_size : int
        Side of the centre crop.
    interpolation : {"bilinear", "bicubic", "nearest"}
        Resampling filter (antialiased when shrinking).
    crop_mode : {"center", "squash", "border"}, default="center"
        Which side(s) the resize brings to ``resize_size`` (see above).
    fill : tuple of 3 int, default=(0, 0, 0)
        RGB colour of the padding around images smaller than the crop
        (timm's border mode pads with the mean pixel).

    Examples
    --------
    >>> from PIL import Image
    >>> ResizeCenterCrop(224, 224, crop_mode="border", fill=(124, 116, 104)).resize(Image.new("RGB", (640, 480))).size
    (224, 168)
    >>> crop = ResizeCenterCrop(256, 224)
    >>> crop(Image.new("RGB", (640, 480))).shape
    torch.Size([3, 224, 224])
    >>> crop.resampler, crop.resize_crop(Image.new("RGB", (640, 480))).size
    ('tensor', (224, 224))
    """

    def __init__(
        self,
        resize_size: int,
        crop_size: int,
        interpolation: str = "bilinear",
        *,
        crop_mode: str = "center",
        fill: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f"interpolation must be one of {sorted(_PIL_FILTERS)}, got {interpolation!r}")
        if crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {list(CROP_MODES)}, got {crop_mode!r}")
        fill = tuple(int(v) for v in fill)
        if len(fill) != 3 or not all(0 <= v <= 255 for v in fill):
            raise ValueError(f"fill must be 3 integers in [0, 255] (an RGB colour), got {fill!r}")
        self.resize_size = int(resize_size)
        self.crop_size = int(crop_size)
        self.interpolation = interpolation
        self.crop_mode = crop_mode
        self.fill = fill

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest JPEG draft-mode decode size: twice the resize target.

        JPEG decoders can scale by 1/2, 1/4 or 1/8 while decoding, which
        makes large photos several times cheaper to read. Decoding straight
        to the target size changes the result noticeably (the DCT scaling
        is not the antialiased resize the weights were trained with); with
        a 2x margin the final antialiased resize does the real work and the
        embedding moves by far less, while a 4000x3000 phone photo still
        decodes at 1/4 scale.
        """
        return (2 * self.resize_size, 2 * self.resize_size)

    def resize(self, img: Image.Image) -> Image.Image:
        """Resize an RGB PIL image to ``resize_size`` as ``crop_mode`` says (the shorter side for "center")."""
        w, h = img.size
        new_size = _mode_size(w, h, self.resize_size, self.crop_mode)
        if new_size == (w, h):
            return img
        return img.resize(new_size, _PIL_FILTERS[self.interpolation])

    def center_crop(self, img: Image.Image) -> Image.Image:
        """The square centre crop of ``crop_size`` (torchvision's rounding; pads with ``fill`` when too small)."""
        w, h = img.size
        c = self.crop_size
        if w < c or h < c:
            w, h, left, top = _padded(w, h, c)
            canvas = Image.new("RGB", (w, h), self.fill)
            canvas.paste(img, (left, top))
            img = canvas
        left, top = _crop_origin(w, h, c)
        return img.crop((left, top, left + c, top + c))

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """Resize and crop an RGB PIL image, returning a PIL image."""
        return self.center_crop(self.resize(img))

    @property
    def resampler(self) -> Literal["tensor", "pil"]:
        """Where calling the transform resizes: ``"tensor"`` or ``"pil"``."""
        return "tensor" if self.interpolation in _TENSOR_FILTERS else "pil"

    @property
    def takes_tensors(self) -> bool:
        """Whether calling the transform also takes uint8 CHW tensors (decoded JPEGs)."""
        return self.resampler == "tensor"

    def _resize_crop_tensor(self, x):
        h, w = x.shape[-2:]
        new_w, new_h = _mode_size(w, h, self.resize_size, self.crop_mode)
        if (new_w, new_h) != (w, h):
            # torch's own uint8 kernel, as torchvision's resize calls it
            # (without importing torchvision, a slow import).
            x = torch.nn.functional.interpolate(
                x.unsqueeze(0), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
            ).squeeze(0)
        c = self.crop_size
        if new_w < c or new_h < c:
            # Pad with the fill colour around the image, as the PIL path does.
            canvas_w, canvas_h, left, top = _padded(new_w, new_h, c)
            canvas = torch.tensor(self.fill, dtype=x.dtype).reshape(-1, 1, 1).repeat(1, canvas_h, canvas_w)
            canvas[:, top : top + new_h, left : left + new_w] = x
            x, new_w, new_h = canvas, canvas_w, canvas_h
        left, top = _crop_origin(new_w, new_h, c)
        return x[:, top : top + c, left : left + c].contiguous()

    def __call__(self, img: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(img, torch.Tensor):
            if not self.takes_tensors:
                raise TypeError(f"{self!r} resizes in PIL: pass a PIL image, not a tensor")
            return self._resize_crop_tensor(img)
        if self.resampler == "tensor":
            return self._resize_crop_tensor(_pil_to_planar_view(img))
        return pil_to_chw(self.resize_crop(img))

    def __repr__(self) -> str:
        extra = "" if self.crop_mode == "center" else f", crop_mode={self.crop_mode!r}"
        extra += "" if self.fill == (0, 0, 0) else f", fill={self.fill}"
        return (
            f"ResizeCenterCrop(resize_size={self.resize_size}, crop_size={self.crop_size}, "
            f"interpolation={self.interpolation!r}{extra})"
        )


def normalize_batch(
    batch: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalise a uint8 (or [0, 255] float) NCHW batch: ``(x / 255 - mean) / std``.

    The one normalisation of the package: the extractor's embedder, the
    backbones' preprocessing and the fine-tuner all call it, so they agree
    to the last bit.

    Parameters
    ----------
    batch : torch.Tensor of shape (n, channels, height, width)
        Pixels in [0, 255].
    mean, std : sequence of float or torch.Tensor
        Per-channel statistics of [0, 1] pixels (e.g. ImageNet's). A tensor
        (e.g. a module buffer of shape (1, C, 1, 1)) follows the module to
        its device.
    dtype : torch.dtype, default=torch.float32
        Dtype of the result (e.g. a half-precision network's).

    Returns
    -------
    torch.Tensor
        Same shape as ``batch``, in ``dtype``.

    Examples
    --------
    >>> import torch
    >>> batch = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    >>> normalize_batch(batch, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).flatten().tolist()
    [1.0, 1.0, 1.0]
    """
    x = batch.to(dtype)
    # Scaling the statistics rather than the batch saves one pass over it.
    mean = torch.as_tensor(mean, dtype=dtype, device=x.device).reshape(1, -1, 1, 1) * 255.0
    std = torch.as_tensor(std, dtype=dtype, device=x.device).reshape(1, -1, 1, 1) * 255.0
    return (x - mean) / std


def random_resized_crop_flip(
    img: Image.Image,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    size: int | None = None,
) -> Image.Image:
    """A random resized crop (and horizontal flip) of a PIL image, at its own scale.

    The usual light augmentation, drawn from ``rng`` only: a crop covering a
    random fraction ``scale`` of the image's area with an aspect ratio in
    ``ratio`` (log-uniform), resized to a square whose side is the image's
    shorter side (or ``size``), then mirrored with probability 1/2. At the
    image's own scale the view stays in image space: a model's own resize
    and centre crop apply to it afterwards, so the same view suits backbones
    of any input size. A training loop that feeds crops straight to one
    network passes its crop size as ``size`` (one resampling, not two).

    Parameters
    ----------
    img : PIL.Image.Image
        An RGB image; it is not modified.
    rng : numpy.random.Generator
        The only source of randomness (the global generators are untouched).
    scale : tuple of float, default=(0.35, 1.0)
        Range of the crop's area as a fraction of the image's area.
    ratio : tuple of float, default=(3/4, 4/3)
        Range of the crop's width / height.
    flip : bool, default=True
        Mirror left-right with probability 1/2.
    size : int or None, default=None
        Side of the output; None: the image's shorter side.

    Returns
    -------
    PIL.Image.Image
        A square RGB image of side ``size`` or ``min(img.size)``.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> img = Image.new("RGB", (40, 30))
    >>> random_resized_crop_flip(img, np.random.default_rng(0)).size
    (30, 30)
    """
    width, height = img.size
    area = width * height
    box = None
    # torchvision's rule: ten tries at a crop that fits, else the centre
    # crop of the closest allowed aspect ratio.
    log_ratio = np.log(ratio)
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = float(np.exp(rng.uniform(log_ratio[0], log_ratio[1])))
        w = int(round(np.sqrt(target_area * aspect)))
        h = int(round(np.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            box = (left, top, left + w, top + h)
            break
    if box is None:
        aspect = width / height
        if aspect < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif aspect > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        box = (left, top, left + w, top + h)
    side = min(width, height) if size is None else int(size)
    view = img.resize((side, side), Image.Resampling.BILINEAR, box=box)
    if flip and rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return view

"""Decoding and resizing real photos: PIL (the library's path) against torchvision's tensor path.

    python benchmarks/decode.py [--repeats 3] [--write-results [FILE]]

On the hymenoptera JPEGs (train and val; the one GIF is not a JPEG), one
thread, milliseconds per image (median over the repeats of the mean over the
images), for EfficientNet-Lite0's preprocessing (shorter side to 256,
bilinear with antialiasing, centre crop 224):

* decoding: PIL in JPEG draft mode as the library decodes
  (``load_image(..., draft_size=...)``), PIL decoding in full, and
  ``torchvision.io.decode_jpeg`` (libjpeg-turbo) on the file's bytes;
* resize + centre crop: the library's PIL ``ResizeCenterCrop`` against
  ``torchvision.transforms.v2.functional`` ``resize(antialias=True)`` +
  ``center_crop`` on the uint8 tensor;
* the two whole pipelines, file to uint8 crop.

Pixels are compared with the library's crop (which equals torchvision's
``Resize`` + ``CenterCrop`` on PIL images, the preprocessing of the reference
outputs): the largest difference in levels and the share of values that
differ. A faster path is worth switching to only when its pixels stay within
one level.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import _results
from extract_throughput import hymenoptera_paths


def per_image_ms(fn, items, repeats):
    """Median over ``repeats`` of the mean milliseconds of ``fn`` per item, and the last outputs."""
    times, outputs = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = [fn(item) for item in items]
        times.append((time.perf_counter() - start) / len(items) * 1000)
    return statistics.median(times), outputs


def compare(crops, reference):
    """(largest difference in levels, share of values that differ) against the reference crops."""
    largest, differing, total = 0, 0, 0
    for crop, ref in zip(crops, reference):
        diff = (crop.to(torch.int16) - ref.to(torch.int16)).abs()
        largest = max(largest, int(diff.max()))
        differing += int((diff > 0).sum())
        total += diff.numel()
    return largest, differing / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    _results.add_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one decoding thread, as each of the extractor's decoders

    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as F

    from sktransfer.backbones import get_backbone
    from sktransfer.image._decode import load_image

    crop = get_backbone("efficientnet_lite0", weights=None).preprocessing.pil_transform()
    paths = hymenoptera_paths()  # the throughput benchmark's 397 JPEGs
    encoded = [Path(p).read_bytes() for p in paths]  # the file cache is warm for every path alike

    def pil_full(path):
        with Image.open(path) as image:
            return image.convert("RGB")

    def tensor_resize_crop(chw):
        # One size: the shorter side, with torchvision's own rounding of the longer one.
        resized = F.resize(chw, crop.resize_size, interpolation=F.InterpolationMode.BILINEAR, antialias=True)
        return F.center_crop(resized, [crop.crop_size, crop.crop_size])

    def torchvision_decode(data):
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)

    rows = []
    t_draft, drafted = per_image_ms(lambda p: load_image(p, draft_size=crop.draft_size), paths, args.repeats)
    t_full, full = per_image_ms(pil_full, paths, args.repeats)
    t_tv, tv_decoded = per_image_ms(torchvision_decode, encoded, args.repeats)
    rows.append(("decode: PIL, draft mode (the library)", t_draft, None))
    rows.append(("decode: PIL, full size", t_full, None))
    rows.append(("decode: torchvision.io.decode_jpeg", t_tv, None))

    t_pil_rc, reference = per_image_ms(crop, drafted, args.repeats)
    full_as_tensor = [torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous() for image in full]
    t_tensor_rc, tensor_crops = per_image_ms(tensor_resize_crop, full_as_tensor, args.repeats)
    full_crops = [crop(image) for image in full]
    rows.append(("resize + crop: PIL (the library), from the draft-mode image", t_pil_rc, (0, 0.0)))
    rows.append(("resize + crop: PIL, from the full-size image", None, compare(full_crops, reference)))
    rows.append(("resize + crop: torchvision tensor, from the full-size image", t_tensor_rc,
                 compare(tensor_crops, full_crops)))
    decoded_equal = compare(tv_decoded, full_as_tensor)
    rows.append(("decode_jpeg pixels against PIL's full decode", None, decoded_equal))

    t_lib, _ = per_image_ms(lambda p: crop(load_image(p, draft_size=crop.draft_size)), paths, args.repeats)
    t_tv_all, tv_all = per_image_ms(lambda data: tensor_resize_crop(torchvision_decode(data)), encoded, args.repeats)
    rows.append(("whole: library (PIL draft + PIL resize/crop)", t_lib, (0, 0.0)))
    rows.append(("whole: decode_jpeg + tensor resize/crop", t_tv_all, compare(tv_all, reference)))

    lines = [
        f"{len(paths)} hymenoptera JPEGs, one thread, ms per image (median of {args.repeats} repeats); "
        f"EfficientNet-Lite0 preprocessing (shorter side {crop.resize_size}, bilinear with "
        f"antialiasing, centre crop {crop.crop_size}). Pixels against the reference named in each row "
        "(the library's crop for resize and whole-pipeline rows, PIL's full-size decode for decode_jpeg, "
        "PIL's crop of the full-size image for the tensor resize).",
        "",
        "| path | ms / image | images/s per core | largest difference (levels) | values that differ |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ms, pixels in rows:
        speed = f"{ms:.2f} | {1000 / ms:.0f}" if ms is not None else " | "
        agree = f"{pixels[0]} | {pixels[1]:.2%}" if pixels is not None else " | "
        lines.append(f"| {name} | {speed} | {agree} |")
    table = "\n".join(lines)
    print(table)
    _results.write(args.write_results, "Decoding: PIL against torchvision's tensor path", table)


if __name__ == "__main__":
    main()

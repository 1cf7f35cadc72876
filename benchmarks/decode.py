"""Decoding and resizing real photos: PIL against torchvision's tensor path.

    python benchmarks/decode.py [--repeats 3] [--write-results [FILE]]

On the hymenoptera JPEGs (train and val; the one GIF is not a JPEG), for
EfficientNet-Lite0's preprocessing (shorter side to 256, bilinear with
antialiasing, centre crop 224):

* one thread, milliseconds per image (median over the repeats of the mean
  over the images):

  * decoding: PIL in JPEG draft mode (``load_image(..., draft_size=...)``,
    the library's decoder for other formats and for JPEGs that draft mode
    shrinks), PIL decoding in full, and ``torchvision.io.decode_jpeg``
    (libjpeg-turbo, the library's decoder for the other JPEGs) on the
    file's bytes;
  * resize + centre crop of the draft-mode image: in PIL
    (``ResizeCenterCrop.resize_crop``, equal to torchvision's PIL-based
    ``Resize`` + ``CenterCrop``) and as the library does it (calling
    ``ResizeCenterCrop``: torchvision's antialiased uint8 kernel on the
    tensor);
  * the whole path, file to uint8 crop: PIL throughout; PIL decoding and
    the tensor resize; the library's (``load_pixels``: ``decode_jpeg`` for
    JPEGs that draft mode would not shrink, PIL in draft mode for the
    others; then the tensor resize); ``decode_jpeg`` for every file;

* the four whole paths again in the decoder's default thread count, in
  images per second: decoding threads run in parallel only while they do not
  hold the GIL.

Pixels are compared with PIL's crop (torchvision's PIL-based preprocessing,
that of the reference outputs): the largest difference in levels and the
share of values that differ. A faster path is worth taking when its pixels
stay within one level.
"""

import argparse
import statistics
import time
from pathlib import Path

import _results
import torch
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


def threaded_images_per_second(paths_by_name, threads, repeats):
    """Median images/s of each whole path in ``threads`` threads, repeats interleaved."""
    from concurrent.futures import ThreadPoolExecutor

    rates = {name: [] for name in paths_by_name}
    for _ in range(repeats):
        for name, (fn, items) in paths_by_name.items():
            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fn, items))
            rates[name].append(len(items) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    _results.add_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one decoding thread, as each of the extractor's decoders

    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    from sktransfer.backbones import get_backbone
    from sktransfer.image._batch_decoder import default_num_workers
    from sktransfer.image._decode import load_image, load_pixels
    from sktransfer.image._transforms import pil_to_chw

    crop = get_backbone("efficientnet_lite0", weights=None).preprocessing.pil_transform()
    paths = hymenoptera_paths()  # the throughput benchmark's 397 JPEGs
    encoded = [Path(p).read_bytes() for p in paths]  # the file cache is warm for every path alike

    def pil_full(path):
        with Image.open(path) as image:
            return image.convert("RGB")

    def pil_resize_crop(image):
        return pil_to_chw(crop.resize_crop(image))

    def torchvision_decode(data):
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)

    def whole_pil(path):
        return pil_resize_crop(load_image(path, draft_size=crop.draft_size))

    def whole_pil_tensor_resize(path):
        return crop(load_image(path, draft_size=crop.draft_size))

    def whole_library(path):
        return crop(load_pixels(path, draft_size=crop.draft_size))

    def whole_decode_jpeg(data):
        return crop(torchvision_decode(data))  # the library's tensor resize and crop

    rows = []
    t_draft, drafted = per_image_ms(lambda p: load_image(p, draft_size=crop.draft_size), paths, args.repeats)
    t_full, full = per_image_ms(pil_full, paths, args.repeats)
    t_tv, tv_decoded = per_image_ms(torchvision_decode, encoded, args.repeats)
    full_as_tensor = [pil_to_chw(image) for image in full]
    rows.append(("decode: PIL, draft mode", t_draft, None))
    rows.append(("decode: PIL, full size", t_full, None))
    rows.append(
        (
            "decode: torchvision.io.decode_jpeg (pixels against PIL's full decode)",
            t_tv,
            compare(tv_decoded, full_as_tensor),
        )
    )

    t_pil_rc, reference = per_image_ms(pil_resize_crop, drafted, args.repeats)
    t_lib_rc, library_crops = per_image_ms(crop, drafted, args.repeats)
    rows.append(("resize + crop: PIL", t_pil_rc, (0, 0.0)))
    rows.append(("resize + crop: the library (uint8 tensor)", t_lib_rc, compare(library_crops, reference)))

    as_tensors = sum(isinstance(load_pixels(p, draft_size=crop.draft_size), torch.Tensor) for p in paths)
    names = {
        "pil": "whole: PIL draft + PIL resize/crop",
        "pil+tensor": "whole: PIL draft + tensor resize/crop",
        "library": f"whole: the library (decode_jpeg for the {as_tensors} JPEGs draft mode would not shrink, "
        "else PIL draft; tensor resize/crop)",
        "decode_jpeg": "whole: decode_jpeg for every file (no draft mode) + tensor resize/crop",
    }
    t_whole_pil, _ = per_image_ms(whole_pil, paths, args.repeats)
    t_whole_pt, pt_all = per_image_ms(whole_pil_tensor_resize, paths, args.repeats)
    t_whole_lib, lib_all = per_image_ms(whole_library, paths, args.repeats)
    t_whole_tv, tv_all = per_image_ms(whole_decode_jpeg, encoded, args.repeats)
    rows.append((names["pil"], t_whole_pil, (0, 0.0)))
    rows.append((names["pil+tensor"], t_whole_pt, compare(pt_all, reference)))
    rows.append((names["library"], t_whole_lib, compare(lib_all, reference)))
    rows.append((names["decode_jpeg"], t_whole_tv, compare(tv_all, reference)))

    threads = default_num_workers()
    threaded = threaded_images_per_second(
        {
            names["pil"]: (whole_pil, paths),
            names["pil+tensor"]: (whole_pil_tensor_resize, paths),
            names["library"]: (whole_library, paths),
            names["decode_jpeg"]: (whole_decode_jpeg, encoded),
        },
        threads,
        args.repeats,
    )

    lines = [
        f"{len(paths)} hymenoptera JPEGs; EfficientNet-Lite0 preprocessing (shorter side {crop.resize_size}, "
        f"bilinear with antialiasing, centre crop {crop.crop_size}). One thread: ms per image, median of "
        f"{args.repeats} repeats; {threads} threads: images/s, median of {args.repeats} interleaved repeats. "
        "Pixels against PIL's crop of the draft-mode image (torchvision's PIL-based Resize + CenterCrop), "
        "and decode_jpeg against PIL's full-size decode.",
        "",
        f"| path | ms / image, 1 thread | images/s, 1 thread | images/s, {threads} threads "
        "| largest difference (levels) | values that differ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, ms, pixels in rows:
        speed = f"{ms:.2f} | {1000 / ms:.0f}"
        parallel = f"{threaded[name]:.0f}" if name in threaded else ""
        agree = f"{pixels[0]} | {pixels[1]:.2%}" if pixels is not None else " | "
        lines.append(f"| {name} | {speed} | {parallel} | {agree} |")
    table = "\n".join(lines)
    print(table)
    _results.write(args.write_results, "Decoding: PIL against torchvision's tensor path", table)


if __name__ == "__main__":
    main()

"""Feature-extraction throughput: naive loop vs extractor vs bare forward.

Usage (from the repository root)::

    python benchmarks/extract_throughput.py [--repeats 3] [--models efficientnet_lite0 resnet18]
                                            [--limit N] [--batch-size 8] [--json out.json]
                                            [--write-results [FILE]]

For every model, and in every repeat, all of these run back to back over the
same hymenoptera images (train + val, 397 JPEGs), so the ratios of one repeat
compare runs under the same machine load:

naive
    A loop over the files as common wrappers write it: ``Image.open(p).convert("RGB")``,
    torchvision ``Resize/CenterCrop/ToTensor/Normalize`` (the weights' own
    sizes and mean/std), then one PyTorch eager forward pass per image under
    ``torch.inference_mode()``.
extractor[engine]
    ``PretrainedFeatureExtractor(model=..., weights=..., engine=...).transform(paths)``
    with every other parameter at its default (batch 32, ``num_workers="auto"``
    decoding threads, JPEG draft mode). ``fit`` (network build, ONNX export or
    cache load) is timed separately and is not part of the rate.
bare[engine]
    The limit: the same engine's forward pass alone, on batches decoded
    beforehand, at the same batch size and thread count. onnxruntime: the
    extractor's own ONNX Runtime session on the uint8 batches; torch: the
    extractor's ``Embedder`` under ``torch.inference_mode()``.
decode
    The extractor's threaded decoding alone (``BatchDecoder`` with the same
    transform, draft size, batch size and worker count), no network.

Rates are images/s; the table gives medians over the repeats, the ratios are
computed within each repeat and then their median taken.
``efficientnet_lite0`` uses its real ImageNet weights; other models use
``weights=None`` (random initialisation: the speed is the same).

Data: the folder holding ``hymenoptera/`` that
``sktransfer.datasets.find_data_dir`` finds (``$SKTRANSFER_DATA`` first).

Internals used (no public equivalent): the extractor's chosen engine
(``_engine``), its ONNX Runtime session (``_get_runner``) and torch module
(``_embedder``), and ``sktransfer.image._batch_decoder`` for the decode-only
and bare-forward runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import _results


def hymenoptera_paths(limit=None):
    import warnings

    from sktransfer.datasets import load_image_folder

    from sktransfer.datasets import find_data_dir

    root = Path(find_data_dir("hymenoptera", required=True)) / "hymenoptera"
    paths = []
    for split in ("train", "val"):
        with (
            warnings.catch_warnings()
        ):  # train/ants/imageNotFound.gif is skipped, as intended
            warnings.simplefilter("ignore")
            p, _ = load_image_folder(root / split)
        paths.extend(p)
    return paths[:limit] if limit else paths


def default_weights(model):
    return "DEFAULT" if model == "efficientnet_lite0" else None


# ------------------------------------------------------------------ the runs


def make_naive(backbone, threads=None):
    """The one-image-at-a-time loop of common wrappers (torchvision transforms, eager).

    threads=None keeps torch's default intra-op thread count (what such
    wrappers run with); an int sets it for the loop and restores it after.
    """
    from PIL import Image
    from torchvision import transforms as T

    pre = backbone.preprocessing
    interp = {
        "bilinear": T.InterpolationMode.BILINEAR,
        "bicubic": T.InterpolationMode.BICUBIC,
        "nearest": T.InterpolationMode.NEAREST,
    }[pre.interpolation]
    tf = T.Compose(
        [
            T.Resize(pre.resize_size, interpolation=interp),
            T.CenterCrop(pre.crop_size),
            T.ToTensor(),
            T.Normalize(pre.mean, pre.std),
        ]
    )

    def run(paths):
        out = []
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                for p in paths:
                    img = Image.open(p).convert("RGB")
                    x = tf(img).unsqueeze(0)
                    out.append(backbone.forward_embedding(x).numpy())
        finally:
            torch.set_num_threads(before)
        return np.concatenate(out)

    return run


def make_decode(ext, paths):
    from sktransfer.image._batch_decoder import BatchDecoder, resolve_num_workers

    transform = ext.backbone_.preprocessing.pil_transform()

    def run():
        decoder = BatchDecoder(
            paths,
            transform,
            batch_size=ext.batch_size,
            num_workers=resolve_num_workers(ext.num_workers),
            draft_size=transform.draft_size,
        )
        n = 0
        for _, batch, _ in decoder:
            n += len(batch)
        return n

    return run


def make_bare(ext, batches):
    """The engine's forward pass alone, over pre-decoded uint8 batches."""
    if ext._engine == "onnxruntime":
        runner = ext._get_runner()  # the extractor's own ONNX Runtime session

        def run():
            for b in batches:
                runner(b)
    else:
        embedder = ext._embedder

        def run():
            with torch.inference_mode():
                for b in batches:
                    embedder(b)

    return run


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def bench_model(model, paths, args):
    from sktransfer import PretrainedFeatureExtractor
    from sktransfer.image._batch_decoder import decode_all, resolve_num_workers

    weights = default_weights(model)
    n = len(paths)
    exts, fit_s = {}, {}
    for engine in ("auto", "torch"):
        ext = PretrainedFeatureExtractor(
            model=model, weights=weights, engine=engine, batch_size=args.batch_size
        )
        torch.manual_seed(0)  # weights=None: both engines get the same random network
        fit_s[engine], _ = timed(ext.fit, paths)
        exts[engine] = ext
    engines = {"auto": exts["auto"]._engine, "torch": exts["torch"]._engine}
    backbone = exts["torch"].backbone_

    # Decode once for the bare-forward runs (same transform and draft size as the extractor).
    transform = backbone.preprocessing.pil_transform()
    decoded, _ = decode_all(
        paths,
        transform,
        num_workers=resolve_num_workers("auto"),
        draft_size=transform.draft_size,
    )
    batches = [decoded[i : i + args.batch_size] for i in range(0, n, args.batch_size)]

    naive_paths = paths[: args.naive_limit] if args.naive_limit else paths
    naive, naive_1thread = make_naive(backbone), make_naive(backbone, threads=1)
    runs = {
        "naive": lambda: naive(naive_paths),
        "naive_1thread": lambda: naive_1thread(paths),
        "decode": make_decode(exts["auto"], paths),
        "extractor_auto": lambda: exts["auto"].transform(paths),
        "bare_auto": make_bare(exts["auto"], batches),
        "extractor_torch": lambda: exts["torch"].transform(paths),
        "bare_torch": make_bare(exts["torch"], batches),
    }
    # Warm-up: first calls allocate, build kernels and fill the page cache.
    warm = paths[: 2 * args.batch_size]
    make_naive(backbone)(paths[:4])
    make_decode(exts["auto"], paths)()  # reads every file once: page cache
    for ext in exts.values():
        ext.transform(warm)
        make_bare(ext, batches[:2])()

    # Correctness check, outside timing. Relative max abs difference (divided by
    # the largest |feature|) of each engine vs the naive loop (includes JPEG
    # draft-mode decoding of the few images >= 512 px on the short side), and
    # of onnxruntime vs torch on the same batches (the engine tolerance).
    ref = make_naive(backbone)(paths[:16])
    feats = {e: exts[e].transform(paths[:16]) for e in exts}
    scale = float(np.abs(ref).max())
    agree = {f"{e}_vs_naive": float(np.abs(feats[e] - ref).max()) / scale for e in exts}
    agree["auto_vs_torch"] = float(np.abs(feats["auto"] - feats["torch"]).max()) / scale

    per_repeat = []
    for r in range(args.repeats):
        rates = {}
        for name, fn in runs.items():
            sec, _ = timed(fn)
            rates[name] = (len(naive_paths) if name == "naive" else n) / sec
        per_repeat.append(rates)
        print(
            f"  [{model}] repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{k}={v:.1f}" for k, v in rates.items()),
            flush=True,
        )

    def med(key):
        return statistics.median(rep[key] for rep in per_repeat)

    def med_ratio(num, den):
        return statistics.median(rep[num] / rep[den] for rep in per_repeat)

    return {
        "model": model,
        "weights": weights,
        "n_images": n,
        "batch_size": args.batch_size,
        "engines": engines,
        "fit_s": fit_s,
        "max_abs_diff_vs_naive": agree,
        "rates": {k: med(k) for k in runs},
        "naive_images": len(naive_paths),
        "ratios": {
            e: {
                "b/a": med_ratio(f"extractor_{e}", "naive"),
                "b/a1": med_ratio(f"extractor_{e}", "naive_1thread"),
                "b/c": med_ratio(f"extractor_{e}", f"bare_{e}"),
                "decode/c": med_ratio("decode", f"bare_{e}"),
            }
            for e in ("auto", "torch")
        },
        "per_repeat": per_repeat,
    }


# ------------------------------------------------------------------ report


def markdown(results, args):
    lines = [
        (
            f"images/s, median of {args.repeats} repeats, batch {args.batch_size}, "
            f"{results[0]['n_images']} hymenoptera JPEGs (naive loop at default threads: first "
            f"{results[0]['naive_images']}); ratios per repeat, median. a1 = naive loop with "
            "torch.set_num_threads(1); b/a1 is the conservative speed-up."
        ),
        "",
        (
            "| model | engine | naive (a) | naive 1 thread (a1) | extractor (b) | bare forward (c) | decode only "
            "| b/a | b/a1 | b/c | fit s |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        rt = res["rates"]
        for e in ("auto", "torch"):
            label = f"{e} -> {res['engines'][e]}" if e == "auto" else "torch"
            ra = res["ratios"][e]
            lines.append(
                f"| {res['model']} | {label} | {rt['naive']:.1f} | {rt['naive_1thread']:.1f} | "
                f"{rt[f'extractor_{e}']:.1f} | {rt[f'bare_{e}']:.1f} | {rt['decode']:.1f} | "
                f"{ra['b/a']:.2f} | {ra['b/a1']:.2f} | {ra['b/c']:.2f} | "
                f"{res['fit_s'][e]:.1f} |"
            )
    lines.append("")
    lines.append(
        "Relative max abs feature difference on 16 images (vs naive loop includes JPEG draft "
        "decoding): "
        + "; ".join(
            f"{r['model']}: "
            + ", ".join(f"{e} {v:.1e}" for e, v in r["max_abs_diff_vs_naive"].items())
            for r in results
        )
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repeats per run (median reported)"
    )
    parser.add_argument(
        "--models", nargs="+", default=["efficientnet_lite0", "resnet18"]
    )
    parser.add_argument("--batch-size", type=int, default=8, help="the extractor's CPU default")
    parser.add_argument(
        "--limit", type=int, default=None, help="use only the first N images"
    )
    parser.add_argument(
        "--naive-limit",
        type=int,
        default=None,
        help="time the default-threads naive loop on the first N images only (it is slow)",
    )
    parser.add_argument("--json", default=None, help="also write the raw results here")
    _results.add_argument(parser)
    args = parser.parse_args(argv)

    paths = hymenoptera_paths(args.limit)
    print(_results.machine(), flush=True)
    results = []
    for model in args.models:
        results.append(bench_model(model, paths, args))
    table = markdown(results, args)
    print()
    print(table)
    print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    notes = f"torch intra-op threads: {torch.get_num_threads()}."
    _results.write(args.write_results, "Feature extraction throughput", table, notes=notes)


if __name__ == "__main__":
    main()

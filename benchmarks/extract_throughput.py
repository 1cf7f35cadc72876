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
dataloader
    The PyTorch idiom: an ImageFolder-style dataset with those transforms, a
    ``DataLoader`` (batch 32, 2 worker processes), eager forward passes
    under ``torch.inference_mode()``.
extractor[engine/precision]
    ``PretrainedFeatureExtractor(model=..., engine=..., precision=...).transform(paths)``
    for every pair in ``CONFIGS`` (torch, ONNX Runtime and OpenVINO; float32,
    bfloat16 and int8), every other parameter at its default. ``fit``
    (export, compilation, int8 calibration on the hymenoptera train images)
    is timed separately. A pair whose precision falls back to float32 on
    this CPU (no native instructions) is listed, not timed.
bare[engine/precision]
    The limit: that extractor's own runner alone, on batches decoded
    beforehand, at the same batch size and thread count.
decode
    The extractor's threaded decoding alone (``BatchDecoder`` with the same
    transform, draft size, batch size and worker count), no network.

Quality (``--no-quality`` skips it): for each pair, the cosine similarity of
the hymenoptera val embeddings to eager float32, LogisticRegression val
accuracy (trained on the train images, and its mean over 30 fixed training
subsets that each leave 5 images out), and flowers accuracy (a fixed 60 per
class subset, 20/class training, 3 seeds).

``--quick``: efficientnet_lite0 only, 48 images, one repeat, quality on 32
train / 32 val images and no flowers: a smoke run.

Rates are images/s; the table gives medians over the repeats, the ratios are
computed within each repeat and then their median taken.
``efficientnet_lite0`` uses its real ImageNet weights; other models use
``weights=None`` (random initialisation: the speed is the same).

Data: the folder holding ``hymenoptera/`` that
``sktransfer.datasets.find_data_dir`` finds (``$SKTRANSFER_DATA`` first).

Internals used (no public equivalent): the extractor's runner
(``_get_runner``) and its batch size (``_batch_size``), and
``sktransfer.image._batch_decoder`` for the decode-only and bare-forward
runs; the precision it really runs is its ``output_description()``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import _results
import numpy as np
import torch


def hymenoptera_paths(limit=None):
    import warnings

    from sktransfer.datasets import find_data_dir, load_image_folder

    root = Path(find_data_dir("hymenoptera", required=True)) / "hymenoptera"
    paths = []
    for split in ("train", "val"):
        with warnings.catch_warnings():  # train/ants/imageNotFound.gif is skipped, as intended
            warnings.simplefilter("ignore")
            p, _ = load_image_folder(root / split)
        paths.extend(p)
    return paths[:limit] if limit else paths


def hymenoptera_splits(limit=None):
    """(train paths, labels), (val paths, labels); ``limit`` keeps that many of each, spread over both classes."""
    import warnings

    from sktransfer.datasets import find_data_dir, load_image_folder

    root = Path(find_data_dir("hymenoptera", required=True)) / "hymenoptera"
    out = []
    for split in ("train", "val"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, y = load_image_folder(root / split)
        y = np.asarray(y)
        if limit:
            keep = np.linspace(0, len(p) - 1, limit).round().astype(int)
            p, y = [p[i] for i in keep], y[keep]
        out.append((list(p), y))
    return out


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


def make_dataloader_idiom(backbone, batch_size=32, workers=2):
    """What a PyTorch user writes: an ImageFolder-style dataset, a DataLoader, eager forward."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    pre = backbone.preprocessing
    tf = T.Compose(
        [T.Resize(pre.resize_size), T.CenterCrop(pre.crop_size), T.ToTensor(), T.Normalize(pre.mean, pre.std)]
    )

    class Files(Dataset):
        def __init__(self, paths):
            self.paths = paths

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            return tf(Image.open(self.paths[i]).convert("RGB"))

    def run(paths):
        out = []
        with torch.inference_mode():
            for x in DataLoader(Files(paths), batch_size=batch_size, num_workers=workers):
                out.append(backbone.forward_embedding(x).numpy())
        return np.concatenate(out)

    return run


def make_decode(ext, paths):
    from sktransfer.image._batch_decoder import BatchDecoder, resolve_num_workers

    transform = ext.backbone_.preprocessing.pil_transform()

    def run():
        decoder = BatchDecoder(
            paths,
            transform,
            batch_size=ext._batch_size(),
            num_workers=resolve_num_workers(ext.num_workers),
            draft_size=transform.draft_size,
        )
        n = 0
        for _, batch, _ in decoder:
            n += len(batch)
        return n

    return run


def make_bare(ext, batches):
    """The engine's forward pass alone (the extractor's own runner), over pre-decoded uint8 batches."""
    runner = ext._get_runner()

    def run():
        for b in batches:
            runner(b)

    return run


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


# (engine, precision) pairs; a pair whose precision falls back to float32 on
# this CPU (a warning) is reported as such and not timed twice.
CONFIGS = [
    ("torch", "float32"),
    ("onnxruntime", "float32"),
    ("onnxruntime", "int8"),
    ("openvino", "float32"),
    ("openvino", "bfloat16"),
    ("openvino", "int8"),
]


def build_extractors(model, weights, calib_paths, args):
    import warnings

    from sktransfer import PretrainedFeatureExtractor

    exts, fit_s, skipped = {}, {}, {}
    for engine, precision in CONFIGS:
        label = f"{engine}/{precision}"
        ext = PretrainedFeatureExtractor(
            model=model, weights=weights, engine=engine, precision=precision, batch_size=args.batch_size
        )
        torch.manual_seed(0)  # weights=None: every engine gets the same random network
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                # int8 calibrates on fit's images: the training split, never the val images.
                fit_s[label], _ = timed(ext.fit, calib_paths)
            except ImportError as exc:
                skipped[label] = f"not installed ({exc})"
                continue
        if ext.output_description()["precision"] != precision:
            skipped[label] = "falls back to float32 on this CPU: " + "; ".join(
                str(w.message).split(":")[1].split(",")[0].strip()
                for w in caught
                if "runs in float32" in str(w.message)
            )
            continue
        exts[label] = ext
    return exts, fit_s, skipped


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


QUALITY_SUBSETS, QUALITY_LEFT_OUT = 30, 5


def training_subsets(n):
    """Fixed random subsets of n training indices, each leaving QUALITY_LEFT_OUT out."""
    rng = np.random.default_rng(0)
    return [np.sort(rng.choice(n, n - QUALITY_LEFT_OUT, replace=False)) for _ in range(QUALITY_SUBSETS)]


def quality(exts, reference, splits, flowers):
    """Cosine to eager float32 on hymenoptera val, and LogisticRegression accuracy, per config."""
    from sklearn.linear_model import LogisticRegression

    (tr, ytr), (va, yva) = splits
    out = {}
    for label, ext in exts.items():
        ftr, fva = ext.transform(tr), ext.transform(va)
        cos = cosine(fva, reference)
        lr = LogisticRegression(max_iter=3000).fit(ftr, ytr)
        row = {
            "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()),
            "hym_correct": int(round(lr.score(fva, yva) * len(yva))),
            "hym_n": len(yva),
        }
        # One split decides by single images near the boundary: the mean over
        # training subsets (the same ones for every config) shows the gap
        # between precisions with less noise.
        ytr_array, subset_correct = np.asarray(ytr), []
        for keep in training_subsets(len(ytr)):
            clf = LogisticRegression(max_iter=3000).fit(ftr[keep], ytr_array[keep])
            subset_correct.append(clf.score(fva, yva) * len(yva))
        row["hym_subsets_mean"] = float(np.mean(subset_correct))
        if flowers is not None:
            fpaths, fy, seeds = flowers
            feats = ext.transform(fpaths)
            accs = []
            for train_idx, test_idx in seeds:
                clf = LogisticRegression(max_iter=3000).fit(feats[train_idx], fy[train_idx])
                accs.append(clf.score(feats[test_idx], fy[test_idx]))
            row["flowers_acc"] = float(np.mean(accs))
        out[label] = row
    return out


def flowers_subset(per_class_total, per_class_train, n_seeds):
    """A fixed flowers subset and, per seed, a per_class_train/class training split of it."""
    import warnings

    from sktransfer.datasets import find_data_dir, load_image_folder

    root = Path(find_data_dir("flowers", required=True)) / "flowers"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths, y = load_image_folder(root)
    y = np.asarray(y)
    rng = np.random.default_rng(0)
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class_total] for c in np.unique(y)])
    paths, y = [paths[i] for i in keep], y[keep]
    seeds = []
    for seed in range(n_seeds):
        r = np.random.default_rng(seed)
        train = np.concatenate([r.permutation(np.flatnonzero(y == c))[:per_class_train] for c in np.unique(y)])
        seeds.append((train, np.setdiff1d(np.arange(len(y)), train)))
    return paths, y, seeds


def bench_model(model, paths, args, splits, flowers):
    from sktransfer.image._batch_decoder import decode_all, resolve_num_workers

    weights = default_weights(model)
    n = len(paths)
    (tr, _), (va, _) = splits
    exts, fit_s, skipped = build_extractors(model, weights, tr, args)
    backbone = exts["torch/float32"].backbone_
    any_ext = exts["torch/float32"]

    # Decode once for the bare-forward runs (same transform and draft size as the extractor).
    transform = backbone.preprocessing.pil_transform()
    decoded, _ = decode_all(paths, transform, num_workers=resolve_num_workers("auto"), draft_size=transform.draft_size)
    batches = [decoded[i : i + args.batch_size] for i in range(0, n, args.batch_size)]

    naive_paths = paths[: args.naive_limit] if args.naive_limit else paths
    naive, loader = make_naive(backbone), make_dataloader_idiom(backbone)
    runs = {
        "naive": lambda: naive(naive_paths),
        "dataloader": lambda: loader(paths),
        "decode": make_decode(any_ext, paths),
    }
    for label, ext in exts.items():
        runs[f"extractor[{label}]"] = (lambda e: lambda: e.transform(paths))(ext)
        runs[f"bare[{label}]"] = make_bare(ext, batches)
    # Warm-up: first calls allocate, build kernels and fill the page cache.
    naive(paths[:4])
    runs["decode"]()
    for ext in exts.values():
        ext.transform(paths[: 2 * args.batch_size])
        make_bare(ext, batches[:2])()

    per_repeat = []
    for r in range(args.repeats):
        rates = {}
        for name, fn in runs.items():
            sec, _ = timed(fn)
            rates[name] = (len(naive_paths) if name == "naive" else n) / sec
        per_repeat.append(rates)
        print(
            f"  [{model}] repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k}={v:.1f}" for k, v in rates.items()),
            flush=True,
        )

    def med(key):
        return statistics.median(rep[key] for rep in per_repeat)

    def med_ratio(num, den):
        return statistics.median(rep[num] / rep[den] for rep in per_repeat)

    reference = exts["torch/float32"].transform(va)
    return {
        "model": model,
        "weights": weights,
        "n_images": n,
        "batch_size": args.batch_size,
        "fit_s": fit_s,
        "skipped": skipped,
        "rates": {k: med(k) for k in runs},
        "naive_images": len(naive_paths),
        "ratios": {
            label: {
                "b/a": med_ratio(f"extractor[{label}]", "naive"),
                "b/dl": med_ratio(f"extractor[{label}]", "dataloader"),
                "b/min(c,d)": statistics.median(
                    rep[f"extractor[{label}]"] / min(rep[f"bare[{label}]"], rep["decode"]) for rep in per_repeat
                ),
                "b/shared": statistics.median(
                    rep[f"extractor[{label}]"] / shared_core_bound(rep[f"bare[{label}]"], rep["decode"])
                    for rep in per_repeat
                ),
            }
            for label in exts
        },
        "quality": quality(exts, reference, splits, flowers) if args.quality else {},
        "quality_n": len(va),
        "per_repeat": per_repeat,
    }


def shared_core_bound(bare, decode):
    """Images/s when decoding and the network share the same cores, each rate measured on all of them.

    Per image the machine spends 1/bare + 1/decode seconds of all its cores,
    so no overlap can beat the harmonic combination; min(bare, decode) is
    reachable only where decoding runs on cores the network leaves idle.
    """
    return 1.0 / (1.0 / bare + 1.0 / decode)


# ------------------------------------------------------------------ report


def markdown(results, args):
    first = results[0]
    lines = [
        (
            f"images/s, median of {args.repeats} repeats, batch {args.batch_size}, {first['n_images']} "
            f"hymenoptera JPEGs (naive loop: first {first['naive_images']}). a = naive per-image loop, "
            "dl = DataLoader idiom (batch 32, 2 worker processes, eager), b = extractor, c = bare forward "
            "of the same engine and precision, d = decode only, s = 1/(1/c + 1/d), the most that decoding and "
            "the network can reach when they share the same cores (c and d each use every core); ratios per "
            "repeat, then the median."
        ),
        "",
        "| model | engine/precision | naive (a) | DataLoader (dl) | extractor (b) | bare forward (c) "
        "| decode only (d) | b/a | b/dl | b/min(c,d) | b/s | fit s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        rt = res["rates"]
        for label, ra in res["ratios"].items():
            lines.append(
                f"| {res['model']} | {label} | {rt['naive']:.1f} | {rt['dataloader']:.1f} | "
                f"{rt[f'extractor[{label}]']:.1f} | {rt[f'bare[{label}]']:.1f} | {rt['decode']:.1f} | "
                f"{ra['b/a']:.2f} | {ra['b/dl']:.2f} | {ra['b/min(c,d)']:.2f} | {ra['b/shared']:.2f} | "
                f"{res['fit_s'][label]:.1f} |"
            )
        for label, why in res["skipped"].items():
            lines.append(f"| {res['model']} | {label} | {why} | | | | | | | | | |")
    if any(res["quality"] for res in results):
        lines += [
            "",
            "Quality against eager float32 (torch engine): cosine similarity of the val embeddings "
            f"({results[0]['quality_n']} hymenoptera val images; int8 calibrated on the train images), "
            "LogisticRegression val accuracy (trained on train; and its mean over "
            f"{QUALITY_SUBSETS} training subsets that each leave {QUALITY_LEFT_OUT} random train images out, "
            "the same subsets for every row), and flowers accuracy (20/class training, mean of 3 seeds).",
            "",
            "| model | engine/precision | cosine mean | cosine min | hymenoptera val correct "
            "| the same, mean over training subsets | flowers acc |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for res in results:
            for label, q in res["quality"].items():
                flowers = f"{q['flowers_acc']:.3f}" if "flowers_acc" in q else "-"
                lines.append(
                    f"| {res['model']} | {label} | {q['cos_mean']:.4f} | {q['cos_min']:.4f} | "
                    f"{q['hym_correct']}/{q['hym_n']} | {q['hym_subsets_mean']:.2f}/{q['hym_n']} | "
                    f"{flowers} |"
                )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per run (median reported)")
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet18"])
    parser.add_argument("--batch-size", type=int, default=8, help="the extractor's CPU default")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument(
        "--naive-limit",
        type=int,
        default=None,
        help="time the default-threads naive loop on the first N images only (it is slow)",
    )
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: lite0 only, 48 images, 1 repeat, quality on 32 val images, no flowers",
    )
    parser.add_argument("--no-quality", dest="quality", action="store_false", help="skip the quality table")
    _results.add_argument(parser)
    args = parser.parse_args(argv)

    if args.quick:
        args.models, args.limit, args.repeats = args.models[:1], args.limit or 48, 1
    paths = hymenoptera_paths(args.limit)
    splits = hymenoptera_splits(32 if args.quick else None)
    flowers = None if args.quick or not args.quality else flowers_subset(60, 20, 3)
    print(_results.machine(), flush=True)
    results = []
    for model in args.models:
        results.append(bench_model(model, paths, args, splits, flowers))
    table = markdown(results, args)
    print()
    print(table)
    print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    notes = f"torch intra-op threads: {torch.get_num_threads()}; the graph engines use as many."
    _results.write(args.write_results, "Feature extraction throughput", table, notes=notes)


if __name__ == "__main__":
    main()

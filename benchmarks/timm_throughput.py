"""Throughput of timm backbones: every engine of the extractor vs a per-image timm loop and embetter's idiom.

Usage (from the repository root)::

    python benchmarks/timm_throughput.py [--repeats 3] [--limit 64] [--batch-size 8]
                                         [--models timm/vit_small_patch16_224 timm/convnext_atto]
                                         [--quick] [--json out.json] [--write-results [FILE]]

Models: a ViT-S/16 (``vit_small_patch16_224``) and ConvNeXt-Atto
(``convnext_atto``), random weights (``weights=None``; the speed does not
depend on them). Images: ``--limit`` real JPEGs of the flowers set (spread
evenly over its 5 classes), decoded from disk in every run. For every model
and in every repeat these run back to back over the same files, so the
ratios of one repeat compare runs under the same load (in an order shuffled
anew, seeded, in every repeat):

timm loop
    What the timm documentation teaches: ``timm.create_model(name)``,
    ``.eval()``, its eval transform (``resolve_model_data_config`` +
    ``create_transform``), then one image at a time,
    ``Image.open(p).convert("RGB")`` and
    ``forward_head(forward_features(x), pre_logits=True)`` under
    ``torch.inference_mode()``.
embetter
    embetter's ``ImageLoader`` + ``TimmEncoder`` idiom, reproduced in a few
    lines (not a dependency): ``create_model(name, num_classes=0)``,
    ``resolve_data_config({}, model=model)``, ``create_transform(**config)``,
    then for each PIL image ``model(transform(img).unsqueeze(0))`` and
    ``.detach().numpy()``. Like embetter it neither calls ``.eval()`` nor
    turns autograd off (these two models have no dropout, stochastic depth
    or BatchNorm at their defaults, so the outputs are the same; the cost of
    recording the graph is part of the idiom).
extractor[engine/precision]
    ``PretrainedFeatureExtractor(model="timm/<name>", weights=None,
    engine=..., precision=..., batch_size=...).transform(paths)`` for every
    pair of ``extract_throughput.CONFIGS`` (torch, ONNX Runtime, OpenVINO;
    float32, bfloat16, int8). ``fit`` (export, compilation, int8
    calibration on other flowers photos) is timed separately, cold: the
    script points ``SKTRANSFER_CACHE`` at a fresh temporary folder. A pair
    that cannot run (engine missing, export refused, precision falling back to
    float32 on this CPU) is listed with the reason, not timed.

Every network is built after ``torch.manual_seed(0)`` (embetter's gets those
tensors copied in), so all of them hold the same random parameters; the table's cosine column (mean cosine similarity of
each method's embeddings to the timm loop's) shows they compute the same
features, which is what makes the speeds comparable.

Rates are images/s: medians over the repeats; ratios (to the timm loop) are
taken within each repeat, then their median. ``--quick``: ConvNeXt-Atto only,
16 images, one repeat (a smoke run).

Data: the folder holding ``flowers/`` that ``sktransfer.datasets.find_data_dir``
finds (``$SKTRANSFER_DATA`` first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import warnings
from pathlib import Path

import _results
import numpy as np
import torch
from extract_throughput import CONFIGS, build_extractors, cosine, timed

MODELS = ["timm/vit_small_patch16_224", "timm/convnext_atto"]


def flowers_paths(n, offset=0):
    """``n`` flowers JPEGs spread evenly over the classes; ``offset`` shifts to other photos."""
    from sktransfer.datasets import find_data_dir

    root = Path(find_data_dir("flowers", required=True)) / "flowers"
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    per_class = [sorted(c.glob("*.jpg")) for c in classes]
    out, i = [], offset
    while len(out) < n:
        for files in per_class:
            if i < len(files) and len(out) < n:
                out.append(str(files[i]))
        i += 1
    return out


def timm_name(model):
    return model.split("/", 1)[1] if model.startswith("timm/") else model


def make_timm_loop(model):
    """The per-image loop of timm's documentation, in eval mode without autograd."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config

    torch.manual_seed(0)
    net = timm.create_model(timm_name(model), pretrained=False).eval()
    transform = create_transform(**resolve_model_data_config(net), is_training=False)

    def run(paths):
        out = []
        with torch.inference_mode():
            for p in paths:
                x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
                out.append(net.forward_head(net.forward_features(x), pre_logits=True).numpy())
        return np.concatenate(out)

    return run


def make_embetter_idiom(model):
    """embetter's ImageLoader + TimmEncoder, as its source writes them."""
    import timm
    from PIL import Image
    from timm.data import resolve_data_config
    from timm.data.transforms_factory import create_transform

    net = timm.create_model(timm_name(model), pretrained=False, num_classes=0)
    # Stands in for pretrained=True, which gives every method the same weights:
    # the timm loop's seeded random parameters (num_classes=0 draws them in
    # another order), the classifier left out as embetter leaves it.
    torch.manual_seed(0)
    seeded = timm.create_model(timm_name(model), pretrained=False).state_dict()
    net.load_state_dict({k: v for k, v in seeded.items() if k in net.state_dict()}, strict=True)
    transform = create_transform(**resolve_data_config({}, model=net))

    def run(paths):
        images = [Image.open(p).convert("RGB") for p in paths]  # ImageLoader(convert="RGB")
        batch = [transform(x).unsqueeze(0) for x in images]
        return np.array([net(x).squeeze(0).detach().numpy() for x in batch])

    return run


def bench_model(model, paths, calib_paths, args):
    print(f"\n== {model}", flush=True)
    exts, fit_s, skipped = build_extractors(model, None, calib_paths, args)
    runs = {"timm loop": make_timm_loop(model), "embetter": make_embetter_idiom(model)}
    runs.update({f"extractor[{label}]": ext.transform for label, ext in exts.items()})
    for label, reason in skipped.items():
        print(f"  extractor[{label}]: {reason}", flush=True)
    seconds = {name: [] for name in runs}
    outputs = {}
    for repeat in range(args.repeats):
        # A fresh order in every repeat (seeded): no method always runs first,
        # just after the fits, or right after another one's threads.
        for i in np.random.default_rng(repeat).permutation(len(runs)):
            name, run = list(runs.items())[i]
            s, outputs[name] = timed(run, paths)
            seconds[name].append(s)
            print(f"  repeat {repeat}: {name:28s} {len(paths) / s:8.1f} img/s", flush=True)
    reference = outputs["timm loop"]
    rows = []
    for name in runs:
        rates = [len(paths) / s for s in seconds[name]]
        ratios = [base / s for base, s in zip(seconds["timm loop"], seconds[name])]
        label = name[len("extractor[") : -1] if name.startswith("extractor[") else None
        rows.append(
            {
                "method": name,
                "img_s": statistics.median(rates),
                "img_s_runs": rates,
                "x_timm_loop": statistics.median(ratios),
                "cos_mean": float(cosine(outputs[name], reference).mean()),
                "fit_s": fit_s.get(label) if label else None,
            }
        )
    return {
        "model": model,
        "n_images": len(paths),
        "rows": rows,
        "skipped": skipped,
        "dim": int(reference.shape[1]),
    }


def markdown(results, args):
    lines = [
        f"{results[0]['n_images']} flowers JPEGs per run, decoded from disk every run; "
        f"median of {args.repeats} repeats; extractor batch size {args.batch_size}; random weights "
        "(the same in every method, see the cosine column).",
        "",
    ]
    for r in results:
        lines += [
            f"**{r['model']}** ({r['dim']}-d embedding)",
            "",
            "| method | img/s (median) | x timm loop | cosine to timm loop | fit s |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in r["rows"]:
            fit = "" if row["fit_s"] is None else f"{row['fit_s']:.1f}"
            lines.append(
                f"| {row['method']} | {row['img_s']:.1f} | {row['x_timm_loop']:.2f} | {row['cos_mean']:.5f} | {fit} |"
            )
        for label, reason in r["skipped"].items():
            lines.append(f"| extractor[{label}] | not timed: {reason} | | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--limit", type=int, default=64, help="flowers JPEGs per run")
    parser.add_argument("--batch-size", type=int, default=8, help="the extractor's CPU default")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--quick", action="store_true", help="smoke run: convnext_atto, 16 images, 1 repeat")
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.limit, args.repeats = ["timm/convnext_atto"], 16, 1
    # A fresh graph cache: every fit exports, compiles and calibrates (cold).
    os.environ["SKTRANSFER_CACHE"] = tempfile.mkdtemp(prefix="timm-throughput-")
    paths = flowers_paths(args.limit)
    # int8 calibrates on fit's images: other photos than the timed ones.
    calib_paths = flowers_paths(32, offset=args.limit // 5 + 1)
    print(_results.machine(), flush=True)
    with warnings.catch_warnings():
        # timm's own warnings (e.g. on deprecated helpers) would drown the progress lines.
        warnings.simplefilter("ignore", FutureWarning)
        results = [bench_model(model, paths, calib_paths, args) for model in args.models]
    table = markdown(results, args)
    print()
    print(table)
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    import timm

    notes = (
        f"timm {timm.__version__}; torch intra-op threads: {torch.get_num_threads()} (the graph engines use "
        f"as many). Engine/precision pairs: {', '.join(f'{e}/{p}' for e, p in CONFIGS)}."
    )
    _results.write(args.write_results, "timm backbones: extraction throughput per engine", table, notes=notes)


if __name__ == "__main__":
    main()

"""GPU check: the extractor's throughput on CUDA and a mixed-precision fine-tune.

Usage (from the repository root, on a machine with a CUDA GPU)::

    python benchmarks/gpu_check.py [--repeats 3] [--model resnet50] [--write-results [FILE]]
    python benchmarks/gpu_check.py --device cpu --limit 16 --repeats 1   # smoke run, no GPU

``benchmarks/gpu_check.sh`` runs this after the extractor and fine-tuning
tests on the same GPU. Over the 397 hymenoptera JPEGs, side by side in each
repeat, images/s for ``precision`` float32 / float16 / bfloat16:

extractor
    ``PretrainedFeatureExtractor(model=..., weights=None, device="cuda",
    precision=...)``: decoding threads feed the GPU (random weights: the
    speed is the same as with trained ones).
bare
    The same embedder on batches decoded beforehand and already on the GPU:
    the compute limit.
decode
    Decoding alone, the CPU limit. The extractor cannot beat
    min(bare, decode); the last column says how close it comes.

Then ``FineTuneClassifier(device="cuda", precision=...)`` on hymenoptera
(train 244 / val 153) at float32, float16 (with loss scaling) and bfloat16:
fit seconds and val accuracy.

Internals used (no public equivalent): the extractor's embedder
(``_embedder``) and ``_batch_size``, through extract_throughput's helpers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _results
import numpy as np
import torch
from extract_throughput import hymenoptera_paths, hymenoptera_splits, make_decode

PRECISIONS = ("float32", "float16", "bfloat16")


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    synchronize()
    start = time.perf_counter()
    n = fn()
    synchronize()
    return n / (time.perf_counter() - start)


def extraction_rows(model, paths, repeats, device):
    from sktransfer import PretrainedFeatureExtractor

    rates = {p: {"extractor": [], "bare": [], "decode": []} for p in PRECISIONS}
    exts = {
        p: PretrainedFeatureExtractor(model=model, weights=None, device=device, precision=p).fit(paths[:8])
        for p in PRECISIONS
    }
    # Batches decoded once, kept on the GPU: the compute limit.
    ext0 = exts["float32"]
    decoded = []
    from sktransfer.image._batch_decoder import BatchDecoder

    transform = ext0.backbone_.preprocessing.pil_transform()
    for _, batch, _ in BatchDecoder(
        paths, transform, batch_size=ext0._batch_size(), num_workers=4, draft_size=transform.draft_size
    ):
        decoded.append(batch.to(device))
    for p in PRECISIONS:  # warm-up: cuDNN autotuning, lazy init
        exts[p].transform(paths[:64])
    for _ in range(repeats):
        for p, ext in exts.items():
            rates[p]["extractor"].append(timed(lambda ext=ext: len(ext.transform(paths))))
            runner = ext._get_runner()
            rates[p]["bare"].append(timed(lambda runner=runner: sum(len(runner(b)[0]) for b in decoded)))  # one output
            rates[p]["decode"].append(timed(make_decode(ext, paths)))
    lines = [
        "| model | precision | extractor img/s | bare forward img/s | decode-only img/s "
        "| extractor / min(bare, decode) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for p in PRECISIONS:
        med = {k: statistics.median(v) for k, v in rates[p].items()}
        bound = min(med["bare"], med["decode"])
        lines.append(
            f"| {model} | {p} | {med['extractor']:.0f} | {med['bare']:.0f} | {med['decode']:.0f} | "
            f"{med['extractor'] / bound:.2f} |"
        )
    return "\n".join(lines)


def finetune_rows(device, limit):
    from sktransfer import FineTuneClassifier

    (X_train, y_train), (X_val, y_val) = hymenoptera_splits(limit)
    smoke = {"max_epochs": 1, "head_epochs": 1} if limit else {}
    lines = ["| precision | fit s | val accuracy |", "|---|---:|---:|"]
    for precision in PRECISIONS:
        clf = FineTuneClassifier(device=device, precision=precision, random_state=0, **smoke)
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        correct = int(np.sum(clf.predict(X_val) == np.asarray(y_val)))
        lines.append(f"| {precision} | {seconds:.1f} | {correct}/{len(y_val)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--device", default="cuda", help="cpu for a smoke run of the script without a GPU")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="images of each split to use (smoke runs; the fine-tune then runs one epoch)",
    )
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this check runs only where torch.cuda.is_available() (or pass --device cpu)")
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none (--device cpu)"
    print(_results.machine(), "|", gpu, flush=True)
    table = extraction_rows(args.model, hymenoptera_paths(args.limit), args.repeats, args.device)
    print(table, flush=True)
    table += "\n\n" + finetune_rows(args.device, args.limit)
    print(table)
    _results.write(
        args.write_results,
        "GPU check",
        table,
        notes=f"GPU: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}",
    )


if __name__ == "__main__":
    main()

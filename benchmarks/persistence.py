"""Saving a fitted FineTuneClassifier: file sizes against the network's, skops' untrusted types, load time.

Usage (from the repository root)::

    python benchmarks/persistence.py [--quick] [--n-images 16] [--repeats 5] [--write-results [FILE]]

A FineTuneClassifier (EfficientNet-Lite0, its packaged ImageNet weights,
``unfreeze="all"`` so the optimizer holds moments of every tensor, one
epoch) is fitted on ``--n-images`` hymenoptera training photos, then saved
with ``pickle``, ``joblib`` and ``skops.io``, once with the default
``warm_start=False`` and once with ``warm_start=True`` (which keeps the
optimizer's state). Each file's size is compared with the network's
tensors (``module_.state_dict()``); skops' untrusted types are listed;
loading is timed (median of ``--repeats``) and its predictions compared
with the fitted model's. ``--quick``: the tiny random network on 8 photos.

Data: ``hymenoptera/`` in the folder ``sktransfer.datasets.find_data_dir``
finds (``$SKTRANSFER_DATA`` first).
"""

import argparse
import io
import os
import pickle
import statistics
import time
import warnings

import _results
import joblib
import numpy as np


def _network_bytes(clf):
    return sum(t.numel() * t.element_size() for t in clf.module_.state_dict().values())


def _timed_load(load, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        restored = load()
        times.append(time.perf_counter() - t)
    return restored, statistics.median(times)


def measure(clf, X, repeats):
    import skops.io as sio

    network = _network_bytes(clf)
    expected = clf.predict_proba(X)
    rows = []
    pickled = pickle.dumps(clf)
    restored, seconds = _timed_load(lambda: pickle.loads(pickled), repeats)
    rows.append(("pickle", len(pickled), "-", seconds, restored))
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    data = buffer.getvalue()
    restored, seconds = _timed_load(lambda: joblib.load(io.BytesIO(data)), repeats)
    rows.append(("joblib", len(data), "-", seconds, restored))
    data = sio.dumps(clf)
    untrusted = sio.get_untrusted_types(data=data)
    restored, seconds = _timed_load(lambda: sio.loads(data, trusted=untrusted), repeats)
    rows.append(("skops", len(data), f"{len(untrusted)}: {', '.join(untrusted)}", seconds, restored))
    lines = []
    for name, size, trust, seconds, restored in rows:
        same = np.array_equal(restored.predict_proba(X), expected)
        lines.append(
            f"| {name} | {clf.warm_start} | {size / 1e6:.2f} | {network / 1e6:.2f} | {size / network:.2f} | "
            f"{trust} | {seconds:.3f} | {'yes' if same else 'NO'} |"
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the tiny random network on 8 photos: a smoke run")
    parser.add_argument("--n-images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    _results.add_argument(parser)
    args = parser.parse_args()
    from sktransfer import FineTuneClassifier
    from sktransfer.datasets import find_data_dir, load_image_folder

    folder = os.path.join(find_data_dir("hymenoptera", required=True), "hymenoptera", "train")
    paths, labels = load_image_folder(folder)
    n = 8 if args.quick else args.n_images
    pick = np.random.default_rng(0).permutation(len(paths))[:n]
    X, y = [paths[i] for i in pick], [labels[i] for i in pick]
    model = {"model": "tiny_convnet", "weights": None} if args.quick else {}
    repeats = 1 if args.quick else args.repeats
    print(_results.machine(), flush=True)
    lines = [
        "| format | warm_start | file (MB) | network tensors (MB) | file / network | skops' untrusted types "
        "| load (s, median) | same predictions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for warm_start in (False, True):
        clf = FineTuneClassifier(
            **model, unfreeze="all", max_epochs=1, random_state=0, verbose=0, warm_start=warm_start, device="cpu"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        lines += measure(clf, X, repeats)
    body = "\n".join(lines)
    print(body)
    _results.write(args.write_results, "Saving a fitted FineTuneClassifier", body)


if __name__ == "__main__":
    main()

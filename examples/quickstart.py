"""Quickstart: an image classifier from a folder of images, in a minute on a CPU.
==============================================================================

    python examples/quickstart.py [FOLDER] [--write-results [FILE]]

FOLDER holds one sub-folder per class (``FOLDER/ants/1.jpg``...), or
split folders laid out that way (``train/`` and ``val/``, ``training_set/``
and ``test_set/``, ``train/`` ``valid/`` ``test/``...), which are kept as the split. Without FOLDER the
ants-vs-bees data set of the PyTorch transfer-learning tutorial is used
(``sktransfer.datasets.fetch_hymenoptera``).

The transferred model is a frozen ImageNet network (EfficientNet-Lite0,
whose weights ship with the package) turning each image into 1280 numbers,
followed by a plain LogisticRegression. The baseline without transfer is the
same classifier on raw downscaled pixels.

``--write-results`` (from a source checkout) writes the table into
``benchmarks/RESULTS.md`` with the command, date and machine.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sktransfer import PretrainedFeatureExtractor, load_image
from sktransfer.datasets import fetch_hymenoptera, load_image_folder, load_image_splits, split_of

# This example's folder: sphinx-gallery runs the examples from it and does not set __file__.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()


def load_split(folder):
    """(train paths, train labels, test paths, test labels) from a folder.

    A folder already split (``train/`` and ``val/``, ``training_set/`` and
    ``test_set/``...: ``load_image_splits``) keeps its split; a folder of
    class folders is split here, 30% held out.
    """
    root = Path(folder)
    if any(split_of(child.name) for child in root.iterdir() if child.is_dir()):
        splits = load_image_splits(root)
        held_out = "val" if "val" in splits else "test"
        if held_out not in splits:
            sys.exit(f"{root} has a training folder but no val/ or test/ folder to measure accuracy on")
        (X_train, y_train), (X_test, y_test) = splits["train"], splits[held_out]
        return list(X_train), y_train, list(X_test), y_test
    paths, labels = load_image_folder(root)
    X_train, X_test, y_train, y_test = train_test_split(
        list(paths), labels, test_size=0.3, stratify=labels, random_state=0
    )
    return X_train, y_train, X_test, y_test


def raw_pixels(paths, size=32):
    """Each image as its size x size RGB pixels, flattened: the no-transfer baseline."""
    return np.stack([np.asarray(load_image(p).resize((size, size))).reshape(-1) / 255.0 for p in paths])


def main(folder=None):
    if folder is None:
        train = fetch_hymenoptera(subset="train")
        val = fetch_hymenoptera(subset="val")
        X_train, y_train, X_test, y_test = train.paths, train.target, val.paths, val.target
        name = "hymenoptera (ants vs bees)"
    else:
        X_train, y_train, X_test, y_test = load_split(folder)
        name = str(folder)
    classes = sorted(str(c) for c in set(y_train))
    print(f"data set: {name}: {len(X_train)} training and {len(X_test)} test images, classes {classes}")

    results = []
    baseline = make_pipeline(FunctionTransformer(raw_pixels), StandardScaler(), LogisticRegression(max_iter=2000))
    transfer = Pipeline(
        [
            ("embed", PretrainedFeatureExtractor(model="efficientnet_lite0")),
            ("classify", LogisticRegression(max_iter=2000)),
        ]
    )
    for label, clf in [
        ("raw 32x32 pixels + LogisticRegression", baseline),
        ("EfficientNet-Lite0 features + LogisticRegression", transfer),
    ]:
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        accuracy = clf.score(X_test, y_test)
        seconds = time.perf_counter() - start
        results.append((label, accuracy, seconds))

    print()
    print(f"{'model':<50} {'test accuracy':>13} {'wall time':>10}")
    for label, accuracy, seconds in results:
        print(f"{label:<50} {accuracy:>13.3f} {seconds:>9.1f}s")
    return name, len(X_train), len(X_test), results


def results_table(name, n_train, n_test, results):
    lines = [
        f"{name}, {n_train} training -> {n_test} test images; wall time = fit + prediction, decoding included.",
        "",
        "| model | test accuracy | wall time |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {accuracy:.3f} | {seconds:.1f} s |" for label, accuracy, seconds in results]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "benchmarks"))  # RESULTS.md writer
    import _results

    # sphinx-gallery runs this with an empty __doc__.
    parser = argparse.ArgumentParser(description="Quickstart: an image classifier from a folder of images.")
    parser.add_argument("folder", nargs="?", default=None, help="a folder of class sub-folders")
    _results.add_argument(parser)
    args = parser.parse_args()
    outcome = main(args.folder)
    _results.write(args.write_results, "Quickstart (`make demo`)", results_table(*outcome))

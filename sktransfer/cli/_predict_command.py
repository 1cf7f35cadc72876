"""``sktransfer predict MODEL IMAGES... [-o predictions.csv]``: the label and its probability for each image."""

from __future__ import annotations

import csv
import os
import sys

from ._model_file import TRUSTED_TYPES, load_model

__all__ = ["add_parser", "interrupted", "run"]


def add_parser(commands, name):
    parser = commands.add_parser(
        name,
        help="predict the class of images with a model saved by 'sktransfer fit'",
        description="Print (or write as CSV) the predicted label of each image and its probability (blank for "
        "a classifier without probabilities). A folder "
        "stands for the images in it (and in its class folders, if it has any). The model file is loaded with "
        "skops, trusting only sktransfer's own estimator types: " + ", ".join(TRUSTED_TYPES) + ".",
    )
    parser.add_argument("model", help="model file written by 'sktransfer fit'")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("-o", "--out", default=None, help="CSV file to write (default: print a table)")
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="TYPE",
        help="also load this type from the model file (repeat for several); only for files you trust",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    return parser


def _expand(arguments):
    """Image paths: files as given, folders as their images (class folders included), in order."""
    from ..datasets import list_image_files, load_image_folder

    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            with os.scandir(argument) as entries:
                has_folders = any(e.is_dir() and not e.name.startswith(".") for e in entries)
            found = list(load_image_folder(argument)[0]) if has_folders else list_image_files(argument)
            if not found:
                raise ValueError(f"folder {argument!r} holds no image file")
            paths.extend(found)
        elif os.path.isfile(argument):
            paths.append(argument)
        else:
            raise FileNotFoundError(f"image not found: {argument}")
    return paths


def run(args):
    if args.out is not None and os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"{args.out!r} exists; pass --overwrite to replace it, or choose another -o")
    model = load_model(args.model, trust=tuple(args.trust))
    paths = _expand(args.images)
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(paths)
        best = probabilities.argmax(axis=1)
        rows = [
            (path, str(model.classes_[k]), float(probabilities[i, k])) for i, (path, k) in enumerate(zip(paths, best))
        ]
    else:  # a classifier without probabilities: the label alone
        rows = [(path, str(label), None) for path, label in zip(paths, model.predict(paths))]
    if args.out is None:
        _print_table(rows)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["path", "label", "probability"])
            writer.writerows((path, label, _probability(probability)) for path, label, probability in rows)
        print(f"wrote {len(rows)} predictions to {args.out}")
    return 0


def _print_table(rows):
    path_width = max(len("path"), *(len(path) for path, _, _ in rows))
    label_width = max(len("label"), *(len(label) for _, label, _ in rows))
    print(f"{'path':<{path_width}}  {'label':<{label_width}}  probability", file=sys.stdout)
    for path, label, probability in rows:
        print(f"{path:<{path_width}}  {label:<{label_width}}  {_probability(probability):>11}")


def _probability(value):
    return "" if value is None else f"{value:.4f}"


def interrupted(args):
    return "interrupted: no predictions written"

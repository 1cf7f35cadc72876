"""``sktransfer fit FOLDER -o model.skops``: train on a folder of class folders, print the validation accuracy.

The validation images are the folder's own split when it has one
(``train/`` with ``val/``, ``valid/`` or ``test/``:
:func:`sktransfer.datasets.load_image_splits`), otherwise a stratified
share of the images held out (``--val-size``). The model saved is the one
trained on the training images only, so the accuracy printed is the one of
the file written.
"""

from __future__ import annotations

import os
import warnings

from ._model_file import save_model
from ._options import add_weights_options, non_negative_int, positive_int, share, weights_argument

__all__ = ["add_parser", "interrupted", "run"]


def add_parser(commands, name):
    parser = commands.add_parser(
        name,
        help="train a classifier on a folder of class folders and save it",
        description="Train an image classifier on FOLDER (FOLDER/class_name/image.jpg, or train/ and val/ or "
        "test/ folders laid out that way), print its validation accuracy and save it with skops. By default "
        "a classifier on frozen embeddings of the images (FrozenFeatureClassifier; --views adds random views); "
        "--finetune trains the network's last layers too (FineTuneClassifier), keeping the frozen-features model "
        "instead when its internal cross-validation finds that better.",
    )
    parser.add_argument("folder", help="folder of class folders, or of train/ and val/ (or test/) folders")
    parser.add_argument("-o", "--out", default="model.skops", help="model file to write (default: %(default)s)")
    add_weights_options(parser)
    parser.add_argument(
        "--finetune", action="store_true", help="fine-tune the network instead of fitting on frozen embeddings"
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="with --finetune: training epochs (default: the library's)"
    )
    parser.add_argument(
        "--views",
        type=non_negative_int,
        default=None,
        help="without --finetune: random views embedded per training image (default: the library's)",
    )
    parser.add_argument(
        "--val-size",
        type=share,
        default=0.2,
        help="share of the images held out for validation when FOLDER has no val/ or test/ folder; "
        "0: none (default: %(default)s)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed of the split and the views (default: 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the validation accuracy")
    return parser


def _has_split_folders(folder):
    from ..datasets import split_of

    with os.scandir(folder) as entries:
        return any(e.is_dir() and not e.name.startswith(".") and split_of(e.name) for e in entries)


def _train_and_validation(folder, val_size, random_state):
    """``(X_train, y_train, X_val, y_val, where)``: the folder's own split, or a stratified held-out share."""
    from ..datasets import load_image_folder, load_image_splits

    if os.path.isdir(folder) and _has_split_folders(folder):
        splits = load_image_splits(folder)
        X_train, y_train = splits["train"]
        held_out = "val" if "val" in splits else "test" if "test" in splits else None
        if held_out is not None:
            X_val, y_val = splits[held_out]
            return list(X_train), y_train, list(X_val), y_val, f"the {held_out} folder"
        folder_paths, folder_labels = X_train, y_train
    else:
        folder_paths, folder_labels = load_image_folder(folder)
    if val_size == 0:
        return list(folder_paths), folder_labels, [], folder_labels[:0], None
    from sklearn.model_selection import train_test_split

    try:
        X_train, X_val, y_train, y_val = train_test_split(
            list(folder_paths), folder_labels, test_size=val_size, stratify=folder_labels, random_state=random_state
        )
    except ValueError as exc:
        raise ValueError(
            f"cannot hold out {val_size:.0%} of the {len(folder_paths)} images of {folder} for validation, "
            f"one share of every class ({exc}); pass another --val-size, or --val-size 0 for no validation"
        ) from None
    return X_train, y_train, X_val, y_val, f"{val_size:.0%} held out"


def _estimator(args):
    from ..feature_extraction import FrozenFeatureClassifier, PretrainedFeatureExtractor

    weights = weights_argument(args)
    verbose = 0 if args.quiet else 1
    extractor = PretrainedFeatureExtractor(model=args.model, weights=weights)
    if args.finetune:
        from ..finetune import FineTuneClassifier

        options = {} if args.epochs is None else {"max_epochs": args.epochs}
        # The check measures fine-tuning against what fit without --finetune builds.
        frozen = FrozenFeatureClassifier(extractor=extractor, random_state=args.random_state)
        return FineTuneClassifier(
            model=args.model,
            weights=weights,
            frozen=frozen,
            random_state=args.random_state,
            verbose=verbose,
            **options,
        )
    options = {} if args.views is None else {"n_views": args.views}
    return FrozenFeatureClassifier(extractor=extractor, random_state=args.random_state, verbose=verbose, **options)


def _class_counts(labels):
    import numpy as np

    names, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    return ", ".join(f"{name} {count}" for name, count in zip(names, counts))


def run(args):
    if args.finetune and args.views is not None:
        raise ValueError("--views is for the frozen-features recipe; with --finetune, leave it out")
    if not args.finetune and args.epochs is not None:
        raise ValueError("--epochs is for --finetune; the frozen-features recipe has no epochs")
    if os.path.exists(args.out) and not args.overwrite:  # before minutes of training, not after
        raise FileExistsError(f"{args.out!r} exists; pass --overwrite to replace it, or choose another -o")
    X_train, y_train, X_val, y_val, where = _train_and_validation(args.folder, args.val_size, args.random_state)
    model = _estimator(args)
    if not args.quiet:
        print(f"training on {len(X_train)} images ({_class_counts(y_train)}) with {type(model).__name__}")
    with warnings.catch_warnings():
        # The fine-tuner stops at Ctrl-C keeping what it trained, and warns;
        # here an interrupted fit saves nothing, said in one line below.
        warnings.filterwarnings("ignore", message=r".* was interrupted after \d+ epoch")
        model.fit(X_train, y_train)
    if getattr(model, "interrupted_", False):
        raise KeyboardInterrupt
    if where is None:
        print("validation: none (--val-size 0)")
    else:
        accuracy = model.score(X_val, y_val)
        print(f"validation accuracy: {accuracy:.3f} ({len(X_val)} images, {where})")
    save_model(model, args.out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"saved {args.out}; predict with: sktransfer predict {args.out} IMAGE_OR_FOLDER...")
    return 0


def interrupted(args):
    return "interrupted: no model saved"

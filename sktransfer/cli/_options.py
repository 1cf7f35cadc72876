"""Options and argument types shared by the commands."""

from __future__ import annotations

import argparse

__all__ = ["add_weights_options", "batch_size", "positive_int", "weights_argument"]


def batch_size(text):
    """argparse type: 'auto' or a whole number >= 1."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def positive_int(text):
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def add_weights_options(parser):
    """``--model`` and ``--weights``, as for every command that builds a backbone."""
    parser.add_argument("--model", default="efficientnet_lite0", help="backbone name (default: %(default)s)")
    parser.add_argument(
        "--weights", default="DEFAULT", help="weights name or file; 'none': random (default: %(default)s)"
    )


def weights_argument(args):
    """The `weights` argument of the library for ``--weights`` ('none': None, random weights)."""
    return None if args.weights.lower() == "none" else args.weights

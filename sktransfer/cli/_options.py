"""Options and argument types shared by the commands."""

from __future__ import annotations

import argparse

__all__ = [
    "add_weights_options",
    "batch_size",
    "non_negative_int",
    "number_type",
    "positive_int",
    "share",
    "weights_argument",
]


def number_type(convert, accept, requirement):
    """An argparse type: ``convert(text)`` (``int`` or ``float``), refused unless ``accept(value)``.

    The errors name the text: not a number (a whole one, for ``int``), or
    ``requirement`` (for example ``"is negative"``).
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            kind = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} {requirement}")
        return value

    return parse


positive_int = number_type(int, lambda value: value >= 1, "is not a positive number")
non_negative_int = number_type(int, lambda value: value >= 0, "is negative")
share = number_type(float, lambda value: 0 <= value < 1, "is not in [0, 1)")


def batch_size(text):
    """argparse type: 'auto' or a whole number >= 1."""
    if text == "auto":
        return text
    try:
        int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a whole number") from None
    return positive_int(text)


def add_weights_options(parser):
    """``--model`` and ``--weights``, as for every command that builds a backbone."""
    parser.add_argument("--model", default="efficientnet_lite0", help="backbone name (default: %(default)s)")
    parser.add_argument(
        "--weights", default="DEFAULT", help="weights name or file; 'none': random (default: %(default)s)"
    )


def weights_argument(args):
    """The `weights` argument of the library for ``--weights`` ('none': None, random weights)."""
    return None if args.weights.lower() == "none" else args.weights

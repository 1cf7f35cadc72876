"""Command line: ``sktransfer embed FOLDER -o OUT`` (or ``python -m sktransfer embed ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sktransfer", description="Transfer learning for images.")
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser(
        "embed",
        help="embed a folder of images into a Parquet table (resumes after an interruption)",
        description="Embed every image of FOLDER (class sub-folders become labels) into a Parquet table "
        "with columns path, label, error and embedding. Rerun the same command to finish an interrupted run.",
    )
    embed.add_argument("folder", help="folder of images, or of class folders of images")
    embed.add_argument("-o", "--out", default="embeddings.parquet", help="Parquet file (default: %(default)s)")
    embed.add_argument("--model", default="efficientnet_lite0", help="backbone name (default: %(default)s)")
    embed.add_argument("--weights", default="DEFAULT", help="weights name or file (default: %(default)s)")
    embed.add_argument("--layer", default=None, help="layer group to read (default: the pre-logits embedding)")
    embed.add_argument("--batch-size", default="auto", type=_batch_size, help="images per forward pass")
    embed.add_argument("--chunk-size", default=256, type=int, help="images per part file (default: %(default)s)")
    embed.add_argument("--cache", default=None, help="embedding store folder reused across runs")
    embed.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _batch_size(text: str) -> str | int:
    return text if text == "auto" else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from .feature_extraction import embed

    weights = None if args.weights.lower() == "none" else args.weights
    result = embed(
        args.folder,
        args.out,
        model=args.model,
        weights=weights,
        layer=args.layer,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        cache=args.cache,
        verbose=0 if args.quiet else 1,
    )
    print(
        f"wrote {result.n_images} rows to {result.path} ({result.n_computed} embedded now, "
        f"{result.n_resumed} from an interrupted run, {result.n_failed} unreadable)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

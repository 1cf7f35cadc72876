"""``sktransfer embed FOLDER -o OUT``: a folder of images into a Parquet table of embeddings (resumable)."""

from __future__ import annotations

from ._options import add_weights_options, batch_size, positive_int, weights_argument

__all__ = ["add_parser", "interrupted", "run"]


def add_parser(commands, name):
    parser = commands.add_parser(
        name,
        help="embed a folder of images into a Parquet table (resumes after an interruption)",
        description="Embed every image of FOLDER (class sub-folders become labels) into a Parquet table "
        "with columns path, label, error and embedding. Rerun the same command to finish an interrupted run; "
        "rerun on a finished table, it returns at once.",
    )
    parser.add_argument("folder", help="folder of images, or of class folders of images")
    parser.add_argument("-o", "--out", default="embeddings.parquet", help="Parquet file (default: %(default)s)")
    add_weights_options(parser)
    parser.add_argument("--layer", default=None, help="layer group to read (default: the pre-logits embedding)")
    parser.add_argument("--batch-size", default="auto", type=batch_size, help="images per forward pass")
    parser.add_argument(
        "--chunk-size", default=256, type=positive_int, help="images per part file (default: %(default)s)"
    )
    parser.add_argument("--cache", default=None, help="embedding store folder reused across runs")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing OUT written from other images or settings"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def run(args):
    from ..feature_extraction import embed

    result = embed(
        args.folder,
        args.out,
        model=args.model,
        weights=weights_argument(args),
        layer=args.layer,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        cache=args.cache,
        verbose=0 if args.quiet else 1,
        if_exists="replace" if args.overwrite else "reuse",
    )
    if result.up_to_date:
        print(
            f"{result.path} is up to date: {result.n_images} rows from these images and settings "
            f"({result.n_failed} unreadable); --overwrite computes them again"
        )
    else:
        print(
            f"wrote {result.n_images} rows to {result.path} ({result.n_computed} embedded now, "
            f"{result.n_resumed} from an interrupted run, {result.n_failed} unreadable)"
        )
    return 0


def interrupted(args):
    from ..storage import EmbeddingTableWriter

    try:
        saved = EmbeddingTableWriter.saved_rows(args.out)
    except Exception:  # noqa: BLE001 -- a part being written when interrupted: the count is a courtesy
        return f"interrupted; rows saved so far are in {args.out}.partial; rerun to resume"
    return f"interrupted: {saved} rows saved; rerun to resume"

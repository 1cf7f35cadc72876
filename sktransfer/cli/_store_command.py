"""``sktransfer store merge OUT IN...``: gather embedding stores filled on several machines into one.

A store (``--cache`` of ``sktransfer embed``, ``cache=`` in Python) must
stay on one machine's local disk while it is written; machines that share
a job each fill their own. ``merge`` copies the rows of the stores ``IN``
into ``OUT`` (created when missing; rows it already holds are kept, the
``IN`` stores are only read), so that the next run, on any machine that
gets a copy of ``OUT``, finds every image embedded anywhere.

Every ``IN`` is checked before anything is written: a missing folder, a
folder without a store or the output named as an input is a usage error
(exit 2), a file that is not a store of this sktransfer's format a data
error (exit 1). Each store is then merged in one transaction: stopped
midway (an error, Ctrl-C), the stores before it are in ``OUT`` and it is
not, and the same command finishes the job.
"""

from __future__ import annotations

import os

__all__ = ["add_parser", "interrupted", "run"]


def add_parser(commands, name):
    parser = commands.add_parser(
        name,
        help="manage embedding stores (merge the stores of several machines)",
        description="Embedding stores are the folders given to 'sktransfer embed --cache'.",
    )
    actions = parser.add_subparsers(dest="subcommand", required=True, metavar="{merge}")
    merge = actions.add_parser(
        "merge",
        help="copy the rows of stores IN into the store OUT",
        description="Copy every row of the embedding stores IN into the store OUT (created when missing). Rows "
        "OUT already holds are kept; the IN stores are only read. Use it to gather the stores that several "
        "machines filled (each machine writes its own) into one, then copy OUT back to every machine.",
    )
    merge.add_argument("out", metavar="OUT", help="store folder to merge into (created when missing)")
    merge.add_argument("inputs", metavar="IN", nargs="+", help="store folders to copy from")
    return parser


def _check_input(folder, out):
    from ..storage import EmbeddingStore

    if not os.path.exists(folder):
        raise FileNotFoundError(f"store folder not found: {folder}")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder} is not a folder; pass the folder of a store (the --cache of embed)")
    store = EmbeddingStore(folder)
    if not os.path.isfile(store.path) or os.path.getsize(store.path) == 0:  # (empty: SQLite would make it one)
        name = os.path.basename(store.path)
        raise FileNotFoundError(f"{folder} holds no embedding store (no {name}, or an empty one)")
    if os.path.exists(out.path) and os.path.samefile(store.path, out.path):
        raise FileExistsError(f"{folder} is the output store {out.directory}; name it once, as OUT")
    store.configurations()  # opens it: a file of another format, or not a database, is refused here
    return store


def run(args):
    from ..storage import EmbeddingStore

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise NotADirectoryError(f"{args.out} is not a folder; OUT is the folder of a store (created when missing)")
    out = EmbeddingStore(args.out)
    stores = [_check_input(folder, out) for folder in args.inputs]
    for folder, store in zip(args.inputs, stores):
        total = len(store)
        added = out.merge(store)
        store.close()
        print(f"{folder}: {total} rows, {added} new")
    print(f"{args.out} holds {len(out)} rows of {len(out.configurations())} configuration(s)")
    return 0


def interrupted(args):
    return (
        f"interrupted: the stores listed above are merged into {args.out}, the one in progress is not; "
        "rerun to finish (rows already merged are kept)"
    )

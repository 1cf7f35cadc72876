"""The parser, the dispatch to one command, and how failures end: one line, an exit status.

Exit statuses: 0 done; 1 the command failed on its data (an unreadable
image, a class with one image...); 2 a usage error (a bad option, a missing
folder, an output that would be overwritten); 130 interrupted (Ctrl-C).
The kinds of error the library raises for a user to fix (ValueError,
OSError, ImportError naming an extra, RuntimeError for a busy output) are
shortened to one line; any other kind is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from . import _embed_command, _fit_command, _predict_command, _store_command

__all__ = ["main"]

_COMMANDS = {"fit": _fit_command, "predict": _predict_command, "embed": _embed_command, "store": _store_command}

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

# A path that is not there or not what it should be, or an output the user
# must decide about: usage errors. The other library errors a user fixes
# in the data.
_USAGE_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)
_DATA_ERRORS = (ValueError, ImportError, OSError, RuntimeError)


class UsageError(Exception):
    """A bad option: argparse's message, raised instead of printing the usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``sktransfer`` parser, one sub-command per module of this package."""
    parser = _Parser(prog="sktransfer", description="Transfer learning for images, with scikit-learn.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(_COMMANDS) + "}")
    for name, command in _COMMANDS.items():
        command.add_parser(commands, name)
    return parser


def _one_line(message):
    return " ".join(str(message).split())


def _warning_line(message, category, filename, lineno, file=None, line=None):
    # The library's warnings are written for the user; where in the library
    # they were raised means nothing on a command line.
    print(f"sktransfer: warning: {_one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: ``sys.argv[1:]``); returns the exit status.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        The arguments after the program name.

    Returns
    -------
    int
        0 done, 1 failed on the data, 2 usage error, 130 interrupted.

    Examples
    --------
    >>> main(["embed", "/no/such/folder", "-q"])
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(_one_line(error), file=sys.stderr)
        return EXIT_USAGE
    command = _COMMANDS[args.command]
    # A command with sub-commands (store merge) names both.
    prefix = " ".join(["sktransfer", args.command, *filter(None, [getattr(args, "subcommand", None)])])
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        try:
            return command.run(args)
        except KeyboardInterrupt:
            # On a terminal, past the "^C" it echoed.
            start = "\n" if sys.stderr.isatty() else ""
            print(f"{start}{prefix}: {command.interrupted(args)}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except _USAGE_ERRORS as error:
            print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        except _DATA_ERRORS as error:
            print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
            return EXIT_FAILED

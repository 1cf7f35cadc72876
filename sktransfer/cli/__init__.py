"""The command line: ``sktransfer fit``, ``predict``, ``embed`` and ``store merge``.

Run as ``sktransfer ...`` once installed, or ``python -m sktransfer ...``.
:func:`main` parses the arguments, runs one command and turns what a user
can fix (a missing folder, a bad option, an existing output) into one line
on stderr, and Ctrl-C into one line and exit status 130.
"""

from ._main import main

__all__ = ["main"]

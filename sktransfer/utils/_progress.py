"""A small progress printer for ``verbose=1``: a bar on a terminal, plain lines elsewhere.

Estimators that run for seconds to minutes (``FrozenFeatureClassifier.fit``,
``rank_transfer``) report each step as it ends. On a terminal one line is
rewritten in place (``\\r``); piped into a file or a notebook log, each step
is its own line, with no control characters, so a log reads as text. It
writes to stderr, as tqdm and scikit-learn's ``verbose`` output do, and is
silent at ``verbose=0``. No dependency: the steps are few and coarse.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 20


class Progress:
    """Report `total` steps of a task named `title`.

    Parameters
    ----------
    verbose : int
        0: silent; 1 or more: report.
    title : str
        What is being done, e.g. ``"rank_transfer"``.
    total : int
        How many steps there will be (may be raised with :meth:`add`).
    stream : file or None, default=None
        Where to write; None: ``sys.stderr`` at each write.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> progress = Progress(1, "demo", total=2, stream=out)
    >>> progress.step("first")
    >>> progress.step("second")
    >>> progress.close()
    >>> [line.split(" in ")[0] for line in out.getvalue().splitlines()]
    ['demo [1/2] first', 'demo [2/2] second', 'demo: done']
    """

    def __init__(self, verbose: int, title: str, *, total: int, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.title = title
        self.total = total
        self.stream = stream
        self.done = 0
        self._start = self._last = time.perf_counter()
        self._rewriting = False

    def _out(self):
        return sys.stderr if self.stream is None else self.stream

    def add(self, steps: int) -> None:
        """Expect `steps` more steps."""
        self.total += steps

    def step(self, what: str) -> None:
        """One step ended: `what` it was."""
        now = time.perf_counter()
        self.done += 1
        if self.verbose <= 0:
            self._last = now
            return
        out = self._out()
        line = f"{self.title} [{self.done}/{self.total}] {what} in {now - self._last:.1f} s"
        self._last = now
        if getattr(out, "isatty", lambda: False)():
            filled = _BAR_WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            out.write(f"\r\033[K{self.title} |{bar}| {self.done}/{self.total} {what}")
            self._rewriting = True
        else:
            out.write(line + "\n")
        out.flush()

    def close(self) -> None:
        """End the bar's line (on a terminal) and say how long the whole task took."""
        if self.verbose <= 0:
            return
        out = self._out()
        if self._rewriting:
            out.write("\n")
        out.write(f"{self.title}: done in {time.perf_counter() - self._start:.1f} s\n")
        out.flush()

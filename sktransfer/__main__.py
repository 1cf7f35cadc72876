"""``python -m sktransfer``: the command line (:mod:`sktransfer.cli`)."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

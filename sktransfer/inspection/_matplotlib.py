"""matplotlib, imported when a display draws: the ``plot`` extra.

One place for the import, its error message naming the extra, and the
``ax=None`` convention of scikit-learn's displays (a new figure).
"""

from __future__ import annotations

from typing import Any


def import_pyplot(caller: str) -> Any:
    """``matplotlib.pyplot``, or an ImportError naming `caller` and the ``plot`` extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, which is in the optional 'plot' extra: "
            'pip install "sktransfer[plot]" (or pip install matplotlib)'
        ) from exc
    return plt


def figure_and_axes(ax: Any, caller: str, figsize: tuple[float, float] | None = None) -> tuple[Any, Any]:
    """``(figure, ax)``: `ax`'s own figure, or a new figure and axes when `ax` is None."""
    plt = import_pyplot(caller)
    if ax is None:
        figure, ax = plt.subplots(figsize=figsize)
        return figure, ax
    if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
        raise TypeError(f"{caller}: ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax

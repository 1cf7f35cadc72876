"""What :func:`sktransfer.embed` does when its output file already exists (``if_exists``).

A finished table records the settings that produced it (the extractor's
``output_description()``) and every row's path and label. Asked to
``"reuse"`` it, embed compares those with the run it is about to start:
the same images and settings mean the table is already what the run would
write, so it returns at once; anything else is refused with what differs,
instead of silently replacing an earlier result.
"""

from __future__ import annotations

import json
import os

__all__ = ["IF_EXISTS", "finished_table_rows"]

IF_EXISTS = ("replace", "reuse")


_SHOWN_CHARACTERS = 60


def _shown(value):
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 3] + "..."


def _setting_differences(earlier, now, prefix=""):
    """``key: earlier -> now`` for each setting that differs, nested settings by their dotted path."""
    differences = []
    for key in sorted(set(earlier) | set(now)):
        before, after = earlier.get(key), now.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            differences += _setting_differences(before, after, f"{prefix}{key}.")
        else:
            differences.append(f"{prefix}{key}: {_shown(before)} -> {_shown(after)}")
    return differences


def finished_table_rows(out, paths, labels, description):
    """The rows of `out` when it is a finished table of these inputs and settings; None when `out` does not exist.

    Parameters
    ----------
    out : str
        The output file of the run.
    paths, labels : list
        The run's inputs.
    description : dict
        The run's extractor's ``output_description()``.

    Returns
    -------
    pandas.DataFrame or None
        The table's ``path``, ``label`` and ``error`` columns.

    Raises
    ------
    FileExistsError
        When `out` exists and is not a table of these inputs and settings;
        the message says what differs.
    """
    from ..storage import EmbeddingTableWriter

    if not os.path.exists(out):
        return None
    earlier, frame = EmbeddingTableWriter.read_rows(out)
    remedy = "pass if_exists='replace' (--overwrite on the command line) to replace it, or choose another output"
    if earlier is None:
        raise FileExistsError(f"{out!r} exists and is not a table written by embed(); {remedy}")
    # Through JSON, as the table stored it, so that tuples compare equal to lists.
    now = json.loads(json.dumps(description))
    if earlier != now:
        raise FileExistsError(
            f"{out!r} holds embeddings computed with other settings ({'; '.join(_setting_differences(earlier, now))}); "
            f"{remedy}"
        )
    if frame["path"].tolist() != list(paths) or frame["label"].tolist() != list(labels):
        raise FileExistsError(
            f"{out!r} holds embeddings of other images ({len(frame)} rows; the inputs now list {len(paths)} "
            f"images, or other paths or labels); {remedy}"
        )
    return frame

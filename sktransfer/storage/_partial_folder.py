"""The partial folder of an embedding table: manifest, lock, part files, and which part holds each row.

``OUT.partial/`` holds ``manifest.json`` (a digest of the inputs and the
settings: a later run resumes only under the same), one Parquet part file
per written chunk (``part-<first position>.parquet``, with the rows' input
positions in a ``_position`` column and what their files were in a
``_file`` column: size, modification and change times in nanoseconds, inode
number), and ``lock``, which the writing run
holds (``fcntl.flock``, so the lock goes when the process does) with its
process id in it. The manifest is written before any part and removed after
all of them. :mod:`._table` builds the table from these parts.

The manifest names the inputs by their paths only: a resumed run compares
each written row's ``_file`` with its file now (one ``os.stat`` per file,
no read) and embeds again the rows of files that changed since (an image
rewritten in place under its name), dropping their old rows from the parts.
The change time catches a copy that keeps the old modification time
(``cp -p``, ``rsync -t``), the inode a file replaced by another (a rename).
Not seen: a rewrite in place that keeps the size and the modification
time, within the file system's timestamp resolution, of the moment the
earlier run looked (a few milliseconds on Linux); a URL, which is taken as
written.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets

from ..image import is_url

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "MANIFEST",
    "file_identity",
    "manifest",
    "open_partial",
    "pyarrow_or_hint",
    "remove_partial",
    "row_sources",
    "saved_row_count",
    "unlock",
    "write_atomically",
    "write_part",
]

_PART = "part-{:012d}.parquet"
# The columns a part file has beyond the table's own.
BOOKKEEPING_COLUMNS = ("_position", "_file")
MANIFEST = "manifest.json"
_LOCK = "lock"


def pyarrow_or_hint():
    """The pyarrow module (with pyarrow.parquet), or an ImportError naming the extra that installs it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "writing and reading embedding tables needs pyarrow: pip install 'sktransfer[parquet]'"
        ) from exc
    return pyarrow


def manifest(paths, labels, config):
    """What a run writes in ``manifest.json``: a digest of its inputs, and its settings."""
    digest = hashlib.sha256(json.dumps([paths, labels]).encode()).hexdigest()
    # Through JSON and back, so that it compares equal to the one read from disk.
    return json.loads(json.dumps({"inputs": digest, "configuration": config}))


def file_identity(path):
    """What a file is now, for a resumed run to tell whether it changed: ``[size, mtime_ns, ctime_ns, inode]``.

    None for a missing value, a URL or a path that cannot be examined (its
    row is an error row; if the file appears later, the row is computed
    again).
    """
    if path is None or is_url(path):
        return None
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _is_part(name):
    return name.startswith("part-") and name.endswith(".parquet")


def _part_names(partial):
    return sorted(name for name in os.listdir(partial) if _is_part(name))


def _lock(partial):
    """Hold the folder's lock file, or raise naming the run that holds it; None where locks do not exist."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, concurrent runs are not detected
        return None
    path = os.path.join(partial, _LOCK)
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 64).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RuntimeError(
                f"{partial!r} is in use by another embed() run (pid {holder}) writing the same output; "
                "wait for it to finish, or stop it and rerun"
            ) from None
        try:
            same_file = os.path.samestat(os.fstat(handle), os.stat(path))
        except FileNotFoundError:  # the run that held it removed it on finishing
            same_file = False
        if same_file:
            os.ftruncate(handle, 0)
            os.write(handle, str(os.getpid()).encode())
            return handle
        os.close(handle)
        os.makedirs(partial, exist_ok=True)


def open_partial(partial, expected, identities):
    """``(done, changed, lock)``: positions already written by an earlier run (empty for a fresh start),
    positions whose file changed since it wrote them (their rows removed), the held lock.

    ``identities`` gives each position's :func:`file_identity` now.
    """
    pyarrow_or_hint()
    os.makedirs(partial, exist_ok=True)
    lock = _lock(partial)
    try:
        manifest_path = os.path.join(partial, MANIFEST)
        if os.path.exists(manifest_path):
            with open(manifest_path, encoding="utf-8") as file:
                earlier = json.load(file)
            if earlier != expected:
                raise ValueError(
                    f"{partial!r} holds the unfinished output of an embed() run on other images or settings; "
                    "delete that folder to start again, or rerun with the same inputs and settings to finish it"
                )
            done, changed = set(), set()
            for name in _part_names(partial):
                kept, dropped = _drop_changed_rows(partial, name, identities)
                done.update(kept)
                changed.update(dropped)
            return done, changed - done, lock
        # The manifest is written before any part and removed after all of
        # them: parts without one are what a clean-up cut short left, of a
        # run that can no longer be identified.
        for name in _part_names(partial):
            os.remove(os.path.join(partial, name))
        write_atomically(manifest_path, lambda f: f.write(json.dumps(expected).encode()), partial)
        return set(), set(), lock
    except BaseException:
        unlock(lock)
        raise


def _drop_changed_rows(partial, name, identities):
    """``(kept, dropped)`` positions of one part; the rows of files changed since are removed from it."""
    pa = pyarrow_or_hint()
    path = os.path.join(partial, name)
    # The bookkeeping columns only: the embeddings are read when a row is to be dropped.
    columns = [c for c in BOOKKEEPING_COLUMNS if c in pa.parquet.read_schema(path).names]
    bookkeeping = pa.parquet.read_table(path, columns=columns)
    positions = bookkeeping.column("_position").to_pylist()
    # A part without file identities (an older version's) cannot vouch for its rows.
    written = bookkeeping.column("_file").to_pylist() if "_file" in columns else [False] * len(positions)
    unchanged = [
        # A position outside the inputs is left for the join to name.
        not 0 <= position < len(identities) or identity == identities[position]
        for position, identity in zip(positions, written)
    ]
    if all(unchanged):
        return positions, []
    kept = [p for p, same in zip(positions, unchanged) if same]
    dropped = [p for p, same in zip(positions, unchanged) if not same]
    if kept:
        filtered = pa.parquet.read_table(path).filter(pa.array(unchanged))
        write_atomically(path, lambda f: pa.parquet.write_table(filtered, f), partial)
    else:
        os.remove(path)
    return kept, dropped


def unlock(lock):
    """Release a lock :func:`open_partial` returned (None: nothing to release)."""
    if lock is not None:
        os.close(lock)  # closing the descriptor releases the flock


def write_atomically(path, write, folder):
    """``write(file)`` into a temporary file in `folder`, renamed to `path` once complete."""
    # Created by os.open with 0o666, so the umask decides who may read the
    # result, as for any file the user writes (mkstemp would force 0o600).
    while True:
        temporary = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_part(partial, positions, paths, labels, errors, block, schema, identities):
    """One chunk to ``partial/part-<first position>.parquet``, atomically, with its files' ``identities``."""
    pa = pyarrow_or_hint()
    identity_type = pa.list_(pa.int64(), 4)
    n_features = block.shape[1]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1), pa.float32()), n_features)
    table = pa.Table.from_arrays(
        [
            pa.array(paths, pa.string()),
            pa.array(labels, pa.string()),
            pa.array(errors, pa.string()),
            embedding,
            pa.array(positions, pa.int64()),
            pa.array(identities, identity_type),
        ],
        schema=schema.append(pa.field("_position", pa.int64())).append(pa.field("_file", identity_type)),
    )
    path = os.path.join(partial, _PART.format(positions[0]))
    write_atomically(path, lambda f: pa.parquet.write_table(table, f), partial)


def row_sources(partial, n_rows):
    """For each row position in order, ``(part name, row in that part)``: each position once, or a ValueError."""
    pa = pyarrow_or_hint()
    source = [None] * n_rows
    for name in _part_names(partial):
        positions = pa.parquet.read_table(os.path.join(partial, name), columns=["_position"]).column(0).to_pylist()
        for row, position in enumerate(positions):
            if not 0 <= position < n_rows:
                raise ValueError(
                    f"{partial!r}: part file {name!r} holds row position {position}, outside 0..{n_rows - 1}; "
                    "delete that folder and rerun embed() to start again"
                )
            # An earlier run's part may hold a position again (cut with
            # another chunk size): under the same manifest it is the same
            # row, kept once.
            if source[position] is None:
                source[position] = (name, row)
    missing = [position for position, found in enumerate(source) if found is None]
    if missing:
        raise ValueError(
            f"{partial!r} lacks {len(missing)} of {n_rows} rows (first missing position {missing[0]}); "
            "rerun embed() with the same inputs and settings to compute them"
        )
    return source


def remove_partial(partial):
    """Remove the folder once its rows are joined (the manifest last)."""
    # The manifest goes last: a clean-up cut short leaves a folder that
    # either still vouches for its parts or holds none.
    for name in os.listdir(partial):
        if name not in (MANIFEST, _LOCK):
            os.remove(os.path.join(partial, name))
    for name in (MANIFEST, _LOCK):
        if os.path.exists(os.path.join(partial, name)):
            os.remove(os.path.join(partial, name))
    try:
        os.rmdir(partial)
    except OSError:  # another run has just started in it: the folder is now its own
        pass


def saved_row_count(partial):
    """How many distinct rows the part files of `partial` hold (0 when there is no such folder)."""
    if not os.path.isdir(partial):
        return 0
    pa = pyarrow_or_hint()
    positions = set()
    for name in _part_names(partial):
        positions.update(
            pa.parquet.read_table(os.path.join(partial, name), columns=["_position"]).column(0).to_pylist()
        )
    return len(positions)

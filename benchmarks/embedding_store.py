"""Embedding store, streaming and resumable embedding: how they perform.

Usage (from the repository root)::

    python benchmarks/embedding_store.py [--quick] [--limit N] [--repeats 3] [--write-results [FILE]]

Sections, each timed back to back so ratios compare runs under one load:

formats
    The two candidate store formats on synthetic 1280-wide float32
    embeddings: ``EmbeddingStore`` (SQLite, WAL, one BLOB per row, one
    transaction per batch) against append-only Parquet part files (one
    file per batch, written to a temporary name and renamed; the index of
    keys rebuilt from every part on open). Write throughput in batches of 8
    (the extractor's CPU batch), lookup of every stored key from a freshly
    opened store, and two processes writing half the rows each at once.
hashing
    SHA-256 of the photo files (the store's content key) against decoding
    them (the extractor's JPEG draft-mode decode, resize and crop).
cold vs warm
    ``PretrainedFeatureExtractor(cache=folder).transform(paths)`` on an empty
    store (computes and stores), then again in a fresh extractor (every
    image found): the ratio is the speed-up of re-embedding stored images.
streaming
    Peak RSS of a fresh process consuming ``iter_transform`` over n and 10n
    paths (the flower photos replicated) with the store warm: it should
    not grow with n.
resume
    ``sktransfer.embed`` in a subprocess killed with SIGKILL once about half
    of the part files exist, then run again: rows resumed from the finished
    parts, and images decoded again by the rerun. Without a store the rerun
    computes every row not in a finished part (the part in flight is lost);
    with ``cache=`` a store, only the batch in flight is.
change check
    What a resume pays to find images rewritten since the interrupted run:
    one ``os.stat`` per path (``file_identity``, what ``embed`` does),
    against SHA-256 of every file (the alternative: a content hash), both
    with the files in the page cache.

Data: the flower photos (``flowers/`` in the folder
``sktransfer.datasets.find_data_dir`` finds). The default backbone
(EfficientNet-Lite0, its real weights) is used for the cold/warm ratio, the
tiny random network for the streaming and resume runs (their subject is
memory and bookkeeping, not the network).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _results
import numpy as np

N_FEATURES = 1280
BATCH = 8


# ----------------------------------------------------------------- formats


class ParquetPartsStore:
    """The alternative measured: append-only Parquet part files, index rebuilt on open."""

    def __init__(self, directory):
        import pyarrow  # noqa: F401

        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.index = None

    def put(self, contents, vectors):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "content": pa.array(contents, pa.binary(32)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
            }
        )
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = os.path.join(self.directory, "." + name)
        pq.write_table(table, temporary)
        os.replace(temporary, os.path.join(self.directory, name))

    def get(self, contents):
        import pyarrow.parquet as pq

        if self.index is None:  # rebuilt on open from the keys of every part
            self.index = {}
            for name in os.listdir(self.directory):
                if name.startswith("part-"):
                    keys = pq.read_table(os.path.join(self.directory, name), columns=["content"]).column(0)
                    for row, key in enumerate(keys.to_pylist()):
                        self.index[key] = (name, row)
        wanted = {}
        for key in contents:
            if key in self.index:
                name, row = self.index[key]
                wanted.setdefault(name, []).append((key, row))
        found = {}
        for name, rows in wanted.items():
            column = pq.read_table(os.path.join(self.directory, name), columns=["vector"]).column(0).combine_chunks()
            matrix = column.flatten().to_numpy().reshape(-1, N_FEATURES)
            for key, row in rows:
                found[key] = matrix[row]
        return [found.get(key) for key in contents]


def _sqlite_store(directory):
    from sktransfer.storage import EmbeddingStore

    store = EmbeddingStore(directory)
    return store, store.register({"benchmark": "formats"}, N_FEATURES)


def _write_rows(kind, directory, keys, vectors):
    if kind == "sqlite":
        store, config = _sqlite_store(directory)
        for s in range(0, len(keys), BATCH):
            store.put(config, keys[s : s + BATCH], vectors[s : s + BATCH])
    else:
        store = ParquetPartsStore(directory)
        for s in range(0, len(keys), BATCH):
            store.put(keys[s : s + BATCH], vectors[s : s + BATCH])


def _read_rows(kind, directory, keys):
    if kind == "sqlite":
        store, config = _sqlite_store(directory)
        return store.get(config, keys)
    return ParquetPartsStore(directory).get(keys)


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    keys = [hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(n)]
    return keys, rng.standard_normal((n, N_FEATURES)).astype(np.float32)


def measure_formats(n, repeats):
    rows = {}
    for kind in ("sqlite", "parquet"):
        writes, lookups, concurrent = [], [], []
        for repeat in range(repeats):
            keys, vectors = _synthetic(n, repeat)
            with tempfile.TemporaryDirectory() as directory:
                t = time.perf_counter()
                _write_rows(kind, directory, keys, vectors)
                writes.append(n / (time.perf_counter() - t))
                t = time.perf_counter()
                got = _read_rows(kind, directory, keys)
                lookups.append(time.perf_counter() - t)
                assert all(np.array_equal(g, v) for g, v in zip(got, vectors))
            with tempfile.TemporaryDirectory() as directory:
                half = n // 2
                ctx = multiprocessing.get_context("spawn")
                procs = [
                    ctx.Process(target=_write_rows, args=(kind, directory, keys[a:b], vectors[a:b]))
                    for a, b in ((0, half), (half, n))
                ]
                t = time.perf_counter()
                for p in procs:
                    p.start()
                for p in procs:
                    p.join()
                concurrent.append(time.perf_counter() - t)
                got = _read_rows(kind, directory, keys)
                assert all(p.exitcode == 0 for p in procs) and all(g is not None for g in got)
        rows[kind] = (statistics.median(writes), statistics.median(lookups), statistics.median(concurrent))
    lines = [
        f"| format | write (rows/s, batches of {BATCH}) | lookup of {n} (s) | 2 writers x {n // 2} rows (s) |",
        "|---|---|---|---|",
    ]
    for kind, (w, lookup, conc) in rows.items():
        lines.append(f"| {kind} | {w:,.0f} | {lookup:.3f} | {conc:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------- hashing


def measure_hashing(paths, repeats, model):
    from sktransfer.backbones import get_backbone
    from sktransfer.image._batch_decoder import decode_all
    from sktransfer.storage._keys import content_key

    transform = get_backbone(model).preprocessing.pil_transform()
    hash_t, decode_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in paths:
            content_key(p)
        hash_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        decode_all(paths, transform, draft_size=transform.draft_size)
        decode_t.append(time.perf_counter() - t)
    h, d = statistics.median(hash_t), statistics.median(decode_t)
    return (
        f"| {len(paths)} photos, one thread | hash (ms/image) | decode for {model} (ms/image) | decode / hash |\n"
        f"|---|---|---|---|\n| median of {repeats} | {1000 * h / len(paths):.2f} | "
        f"{1000 * d / len(paths):.2f} | {d / h:.1f}x |"
    )


# ------------------------------------------------------------- cold / warm


def measure_cold_warm(paths, repeats, model):
    from sktransfer import PretrainedFeatureExtractor

    colds, warms = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as directory:
            est = PretrainedFeatureExtractor(model=model, cache=directory).fit(paths)
            t = time.perf_counter()
            cold = est.transform(paths)
            colds.append(time.perf_counter() - t)
            est = PretrainedFeatureExtractor(model=model, cache=directory).fit(paths)
            t = time.perf_counter()
            warm = est.transform(paths)
            warms.append(time.perf_counter() - t)
            assert np.array_equal(cold, warm)
    ratios = [c / w for c, w in zip(colds, warms)]
    c, w = statistics.median(colds), statistics.median(warms)
    return (
        f"| {len(paths)} photos, {model} | cold (s) | warm (s) | images/s cold | images/s warm | speed-up |\n"
        f"|---|---|---|---|---|---|\n| median of {repeats} | {c:.1f} | {w:.2f} | {len(paths) / c:.0f} | "
        f"{len(paths) / w:.0f} | {statistics.median(ratios):.0f}x |"
    )


# --------------------------------------------------------------- streaming

_STREAM = """
import resource, sys
from sktransfer import PretrainedFeatureExtractor
paths = open(sys.argv[1]).read().split("\\n")
est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, cache=sys.argv[2]).fit(paths[:1])
rows = sum(len(block) for block in est.iter_transform(paths, chunk_size=512))
print(rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def measure_streaming(paths, factor):
    from sktransfer import PretrainedFeatureExtractor

    lines = ["| paths | peak RSS (MiB) | s |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as directory:
        PretrainedFeatureExtractor(model="tiny_convnet", weights=None, cache=directory).fit(paths).transform(paths)
        for n in (len(paths), len(paths) * factor):
            listing = os.path.join(directory, f"paths-{n}.txt")
            with open(listing, "w") as file:
                file.write("\n".join((paths * factor)[:n]))
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", _STREAM, listing, directory],
                check=True,
                capture_output=True,
                text=True,
                env=_env(),
            ).stdout.split()
            assert int(out[0]) == n
            lines.append(f"| {n} | {int(out[1])} | {time.perf_counter() - t:.1f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ resume

_EMBED = """
import sys
from sktransfer import embed
paths = open(sys.argv[1]).read().split("\\n")
embed(paths, sys.argv[2], model="tiny_convnet", weights=None, chunk_size=int(sys.argv[3]),
      cache=sys.argv[4] or None, verbose=0)
"""


def _count_decodes():
    """Wrap the decoder's one-item decode; returns the list it appends to."""
    import sktransfer.image._batch_decoder as batch_decoder

    calls, real = [], batch_decoder.decode_item_or_error
    batch_decoder.decode_item_or_error = lambda item, *args, **kwargs: calls.append(item) or real(item, *args, **kwargs)
    return calls


def _killed_then_resumed(paths, chunk_size, directory, use_store):
    from sktransfer import embed

    out = os.path.join(directory, "emb.parquet")
    partial = out + ".partial"
    store = os.path.join(directory, "store") if use_store else ""
    n_parts = -(-len(paths) // chunk_size)
    # The list goes through a file: thousands of paths overflow a command line.
    listing = os.path.join(directory, "paths.txt")
    Path(listing).write_text("\n".join(paths))
    proc = subprocess.Popen([sys.executable, "-c", _EMBED, listing, out, str(chunk_size), store], env=_env())
    done = 0
    while proc.poll() is None:
        done = len([n for n in os.listdir(partial) if n.startswith("part-")]) if os.path.isdir(partial) else 0
        if done >= n_parts // 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    decoded = _count_decodes()
    t = time.perf_counter()
    result = embed(
        paths, out, model="tiny_convnet", weights=None, chunk_size=chunk_size, cache=store or None, verbose=0
    )
    return done, n_parts, result, len(decoded), time.perf_counter() - t


def measure_resume(paths, chunk_size):
    lines = [
        "| images | store | killed with SIGKILL after | rows resumed | images decoded by the rerun | rerun (s) |",
        "|---|---|---|---|---|---|",
    ]
    for use_store in (False, True):
        with tempfile.TemporaryDirectory() as directory:
            done, n_parts, result, decoded, seconds = _killed_then_resumed(paths, chunk_size, directory, use_store)
        lines.append(
            f"| {len(paths)} | {'yes' if use_store else 'no'} | {done} of {n_parts} parts of {chunk_size} | "
            f"{result.n_resumed} | {decoded} | {seconds:.1f} |"
        )
    return "\n".join(lines)


def measure_change_check(paths, repeats):
    from sktransfer.storage._keys import content_key
    from sktransfer.storage._partial_folder import file_identity

    stat_t, hash_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in paths:
            file_identity(p)
        stat_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        for p in paths:
            content_key(p)
        hash_t.append(time.perf_counter() - t)
    st, h = statistics.median(stat_t), statistics.median(hash_t)
    return (
        f"| {len(paths)} photos, one thread | stat, all files (ms) | SHA-256, all files (ms) | hash / stat |\n"
        f"|---|---|---|---|\n| median of {repeats} | {1000 * st:.1f} | {1000 * h:.1f} | {h / st:.0f}x |"
    )


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_results.REPO), env.get("PYTHONPATH")]))
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run")
    parser.add_argument("--limit", type=int, default=None, help="photos used (default: all, 400 with --quick)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="efficientnet_lite0")
    _results.add_argument(parser)
    args = parser.parse_args()
    from sktransfer.datasets import find_data_dir
    from sktransfer.datasets._folder import load_image_folder

    paths, _ = load_image_folder(os.path.join(find_data_dir("flowers", required=True), "flowers"))
    limit = args.limit or (400 if args.quick else len(paths))
    repeats = 1 if args.quick else args.repeats
    paths = list(paths[:limit])
    print(_results.machine(), flush=True)
    sections = [
        ("Store formats", measure_formats(1000 if args.quick else 4000, repeats)),
        ("Hashing vs decoding", measure_hashing(paths[:200], repeats, args.model)),
        ("Cold embed vs warm re-embed from the store", measure_cold_warm(paths, repeats, args.model)),
        ("iter_transform peak RSS, store warm", measure_streaming(paths, 10)),
        ("embed() resumed after SIGKILL at about half", measure_resume(paths, 32 if args.quick else 128)),
        ("A resume's check for images changed since", measure_change_check(paths, repeats)),
    ]
    body = "\n\n".join(f"### {title}\n\n{table}" for title, table in sections)
    print(body)
    _results.write(args.write_results, "Embedding store, streaming and resume", body)


if __name__ == "__main__":
    main()

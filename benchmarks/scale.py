"""Beyond one process: dask at the speed of a process pool; per-core rates; output and store sizes.

Measures, for the default extractor (EfficientNet-Lite0, packaged weights),
side by side in one run (interleaved, so that a busy moment of a shared
machine hits every layout), median of ``--repeats``:

* **layouts**: images/s embedding ``--limit`` photos, every result kept,
  gathered to the caller and written to Parquet (one list column):
  one process (``transform``, all cores); a ``ProcessPoolExecutor`` of
  ``cores`` single-thread processes, a contiguous share each; and
  ``sktransfer.parallel.dask_transform`` on a ``distributed.LocalCluster``
  of ``cores`` workers x 1 thread and of 1 worker x ``cores`` threads, at
  2, 12 and 16 partitions (workers warmed with ``warm_up`` first, as the
  pools are), and 2 x 1 at 12 partitions with dask's worker profiler off.
  The target: every LocalCluster layout >= 0.9x the process pool. Every
  run's embeddings are compared with the one process's. Each run is
  followed by the same run with an extractor answering zeros at once: the
  pipeline's own fixed cost, without the network;
* **precisions**: images/s per core at float32, bfloat16 and int8 (the
  process pool of single-thread processes), the rates the docs page
  "Ten million images, on paper" scales up: by the wall clock, and per
  CPU-second the processes used (decoding threads included), which a
  machine shared with other jobs changes less;
* **sizes**: bytes per image of the zstd Parquet list column, the share of
  exact zeros, and bytes per row of an ``EmbeddingStore``;
* **pickles** (``--only pickles``): the size of a fitted extractor's pickle
  and a Pipeline's, with the network's tensors and by name, and the first
  ``transform`` in a fresh process with and without the exported graph in
  the disk cache;
* **memory** (``--only memory``): peak RSS per worker when the images are
  replicated to ``--stream-images`` paths and to a quarter of that: it
  must stay flat.

A reduced precision the CPU cannot run fast falls back to float32 with a
warning: then its row measures float32 (its cosine is 1).

    python benchmarks/scale.py --quick                 # smoke run, a few minutes
    python benchmarks/scale.py --write-results         # the tables in RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _results
import numpy as np
from _zero_extractor import ZeroExtractor

PARTITIONS = (2, 12, 16)
REPO = Path(__file__).resolve().parents[1]
_CHILD = r"""
import pickle, resource, statistics, sys, time
import torch
blob, paths, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
t0 = time.perf_counter()
est = pickle.loads(open(blob, "rb").read())
paths = open(paths).read().split("\n")
est.transform(paths[:8])
first = time.perf_counter() - t0
times = []
for _ in range(repeats):
    t = time.perf_counter()
    est.transform(paths)
    times.append(time.perf_counter() - t)
print(first, statistics.median(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def image_paths(dataset, limit):
    from sktransfer.datasets import find_data_dir

    root = Path(find_data_dir(dataset, required=True)) / dataset
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return paths[:limit] if limit else paths


def write_parquet(values, path):
    """One list column, as embed() writes it, zstd-compressed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    pq.write_table(pa.table({"embedding": column}), path, compression="zstd")


@contextlib.contextmanager
def pickled_with_tensors():
    """Pickle extractors as earlier releases did: the network's tensors included."""
    from sktransfer.backbones._persist import backbone_recipe
    from sktransfer.feature_extraction import _extractor

    saved = _extractor.network_state
    _extractor.network_state = lambda bb, model, weights: backbone_recipe(bb, model, weights, tensors=True)
    try:
        yield
    finally:
        _extractor.network_state = saved


def pickle_sizes(est, paths):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(est, LogisticRegression())
    pipe.steps[1] = ("logisticregression", LogisticRegression().fit(np.eye(2, est.n_features_out_), [0, 1]))
    after = {"extractor": len(pickle.dumps(est)), "pipeline": len(pickle.dumps(pipe))}
    with pickled_with_tensors():
        before = {"extractor": len(pickle.dumps(est)), "pipeline": len(pickle.dumps(pipe))}
    return [(what, before[what], after[what]) for what in ("extractor", "pipeline")]


def run_child(blob, paths, threads, repeats, cache):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(paths))
    env = {**os.environ, "SKTRANSFER_CACHE": cache, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, blob, fh.name, str(threads), str(repeats)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    os.unlink(fh.name)
    first, median, rss_kb = float(out[0]), float(out[1]), int(out[2])
    return first, median, rss_kb / 1024


def first_use(blob, paths, cache):
    run_child(blob, paths[:8], 1, 1, cache)  # fills the cache, if it was empty
    warm, _, _ = run_child(blob, paths[:8], 1, 1, cache)
    with tempfile.TemporaryDirectory() as empty:
        cold, _, _ = run_child(blob, paths[:8], 1, 1, empty)
    return warm, cold


def memory_run(est, paths, n_workers, npartitions, workdir):
    """(seconds, peak RSS MiB of each worker) of dask_transform written to Parquet on a LocalCluster."""
    import dask.dataframe as dd
    import distributed
    import pandas as pd

    from sktransfer.parallel import dask_transform, warm_up

    with (
        distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warm_up(client, est)
        series = dd.from_pandas(pd.Series(paths, name="path"), npartitions=npartitions)
        start = time.perf_counter()
        dask_transform(est, series).to_frame().to_parquet(tempfile.mkdtemp(dir=workdir), compression="zstd")
        seconds = time.perf_counter() - start
        rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return seconds, sorted(rss.values())


# ------------------------------------------------------------- process pools

_EST = None


def _pool_init(blob, threads):
    import torch

    global _EST
    torch.set_num_threads(threads)
    _EST = pickle.loads(blob)


def _pool_warm(paths):
    _EST.transform(paths)
    return os.getpid()


def _pool_embed(paths, out, zero=False):
    cpu = time.process_time()  # this process's CPU time, all its threads (decoders included)
    values = (ZeroExtractor() if zero else _EST).transform(paths)
    write_parquet(values, out)
    return values, time.process_time() - cpu


def pool_run(pool, paths, n_shares, folder, zero=False):
    """``(seconds, result, CPU seconds)`` of ``pool`` embedding ``paths`` in ``n_shares`` shares, written and gathered.

    The CPU seconds are those the pool's processes spent, all their threads.
    ``zero``: with the zero extractor instead of the pool's.
    """
    bounds = np.linspace(0, len(paths), n_shares + 1).astype(int)
    start = time.perf_counter()
    futures = [
        pool.submit(_pool_embed, paths[a:b], os.path.join(folder, f"part{i}.parquet"), zero)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]
    done = [f.result() for f in futures]
    seconds = time.perf_counter() - start
    return seconds, np.concatenate([values for values, _ in done]), sum(cpu for _, cpu in done)


def make_pool(blob, processes, threads, warm_paths):
    # Spawned, not forked: a fork of a process whose OpenMP and OpenVINO threads run can hang.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_pool_init, initargs=(blob, threads))
    # Every process loads the network and runs a batch (as warm_up does for dask).
    pids = set()
    while len(pids) < processes:
        pids |= {f.result() for f in [pool.submit(_pool_warm, warm_paths) for _ in range(2 * processes)]}
    return pool


# ------------------------------------------------------------------- dask


def cluster_run(client, est, paths, npartitions, folder):
    """Seconds for dask_transform to embed ``paths`` (written to Parquet and gathered), and the result."""
    import dask
    import dask.dataframe as dd
    import pandas as pd

    from sktransfer.parallel import dask_transform

    series = dd.from_pandas(pd.Series(paths, name="path"), npartitions=npartitions)
    start = time.perf_counter()
    embedding = dask_transform(est, series)
    written = embedding.to_frame().to_parquet(folder, compression="zstd", compute=False)
    gathered, _ = dask.compute(embedding, written)
    seconds = time.perf_counter() - start
    return seconds, np.stack(gathered.to_numpy())


def layouts(est, paths, cores, repeats, workdir):
    """Every layout embedding ``paths``, and the same pipeline with the zero extractor (its fixed cost)."""
    import dask
    import distributed

    from sktransfer.parallel import warm_up

    blob = pickle.dumps(est)
    zero = ZeroExtractor()
    n = len(paths)
    seconds, results, fixed = {}, {}, {}

    def record(name, run, zero_run):
        folder = tempfile.mkdtemp(dir=workdir)
        took, values = run(folder)
        seconds.setdefault(name, []).append(took)
        results.setdefault(name, values)
        fixed.setdefault(name, []).append(zero_run(tempfile.mkdtemp(dir=workdir))[0])

    pools = {
        f"1 process, `transform` (1 x {cores})": (make_pool(blob, 1, cores, paths[:8]), 1),
        f"ProcessPoolExecutor ({cores} x 1)": (make_pool(blob, cores, 1, paths[:8]), cores),
    }
    # (workers, threads, partitions, dask configuration): the layouts, and one with dask's worker profiler off.
    no_profiler = {"distributed.worker.profile.enabled": False}
    layouts = [(cores, 1, PARTITIONS, {}), (1, cores, PARTITIONS, {}), (cores, 1, (12,), no_profiler)]
    clusters = {}
    for workers, threads, parts, config in layouts:
        with dask.config.set(config):
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=":0", silence_logs=40
            )
        client = distributed.Client(cluster, set_as_default=False)
        warm_up(client, est)
        label = f"{workers} x {threads}" + (", worker profiler off" if config else "")
        clusters[label] = (cluster, client, parts)
    try:
        for _ in range(repeats):
            for name, (pool, shares) in pools.items():
                record(
                    name,
                    lambda folder, pool=pool, shares=shares: pool_run(pool, paths, shares, folder)[:2],
                    lambda folder, pool=pool, shares=shares: pool_run(pool, paths, shares, folder, zero=True),
                )
            for layout, (_, client, parts_list) in clusters.items():
                with client.as_current():
                    for parts in parts_list:
                        record(
                            f"LocalCluster {layout}, {parts} partitions",
                            lambda folder, client=client, parts=parts: cluster_run(client, est, paths, parts, folder),
                            lambda folder, client=client, parts=parts: cluster_run(client, zero, paths, parts, folder),
                        )
    finally:
        for pool, _ in pools.values():
            pool.shutdown()
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
    reference = results[next(iter(pools))]
    pool_rate = n / statistics.median(seconds[f"ProcessPoolExecutor ({cores} x 1)"])
    lines = [
        f"{n} images, results written to Parquet and gathered, median of {repeats}. Fixed cost: the same run "
        "with an extractor that answers zeros at once (`_zero_extractor.py`): scheduling, serialisation, "
        "the Parquet writer (of zeros) and gathering, without the network:",
        "",
        "| run | images/s | / process pool | fixed cost (ms) | max abs difference to one process |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, times in seconds.items():
        rate = n / statistics.median(times)
        diff = float(np.max(np.abs(results[name] - reference)))
        cost = 1000 * statistics.median(fixed[name])
        lines.append(f"| {name} | {rate:.1f} | {rate / pool_rate:.2f}x | {cost:.0f} | {diff:.1e} |")
    return lines, reference


def precisions(paths, cores, repeats, workdir):
    from sktransfer import PretrainedFeatureExtractor

    lines = [
        f"Images/s per core: {cores} single-thread processes, {len(paths)} images, median of {repeats}:",
        "",
        "| precision | images/s per core (wall) | images per CPU-second | min cosine to float32 |",
        "|---|---:|---:|---:|",
    ]
    reference = None
    for precision in ("float32", "bfloat16", "int8"):
        est = PretrainedFeatureExtractor(precision=precision).fit(paths[:64])
        pool = make_pool(pickle.dumps(est), cores, 1, paths[:8])
        try:
            runs = [pool_run(pool, paths, cores, tempfile.mkdtemp(dir=workdir)) for _ in range(repeats)]
        finally:
            pool.shutdown()
        values = runs[0][1]
        reference = values if reference is None else reference
        cosine = np.sum(values * reference, 1) / np.linalg.norm(values, axis=1) / np.linalg.norm(reference, axis=1)
        rate = len(paths) / statistics.median(r[0] for r in runs) / cores
        per_cpu_second = len(paths) / statistics.median(r[2] for r in runs)
        lines.append(f"| {precision} | {rate:.1f} | {per_cpu_second:.1f} | {cosine.min():.4f} |")
    return lines


def _store_bytes(store):
    """The store's file size once its write-ahead log is folded into it."""
    import sqlite3

    store.close()
    with sqlite3.connect(store.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(store.path)


def sizes(values, workdir):
    from sktransfer.storage import EmbeddingStore

    path = os.path.join(workdir, "sizes.parquet")
    write_parquet(values, path)
    store = EmbeddingStore(os.path.join(workdir, "store"))
    config = store.register({"benchmark": "scale"}, values.shape[1])
    n, width = values.shape
    half = n // 2
    sizes = []
    for first, stop in ((0, half), (half, n)):
        for start in range(first, stop, 32):  # batches, as the extractor writes them
            rows = range(start, min(start + 32, stop))
            keys = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in rows]  # random order, as real keys
            store.put(config, keys, values[rows.start : rows.stop])
        sizes.append(_store_bytes(store))
    growth = (sizes[1] - sizes[0]) / (n - half)
    return [
        f"{n} embeddings of {width} float32 (raw: {4 * width:,} bytes each); {np.mean(values == 0):.1%} of values "
        "exactly 0:",
        "",
        "| kept as | bytes per image |",
        "|---|---:|",
        f"| Parquet, one list column, zstd | {os.path.getsize(path) / n:,.0f} |",
        f"| EmbeddingStore (SQLite, format 3), file / rows | {sizes[1] / n:,.0f} |",
        f"| EmbeddingStore, each of the last {n - half} rows (file growth / rows) | {growth:,.0f} |",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="flowers", choices=["flowers", "hymenoptera"])
    parser.add_argument("--limit", type=int, default=400, help="images timed per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--stream-images", type=int, default=4000, help="replicated paths for the memory check")
    parser.add_argument("--only", choices=["pickles", "layouts", "sizes", "precisions", "memory"], default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few images, one repeat")
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.repeats, args.stream_images = 64, 1, 192

    from sktransfer import PretrainedFeatureExtractor
    from sktransfer.parallel._threads import usable_cores

    cores = usable_cores()
    paths = image_paths(args.dataset, args.limit)
    print(_results.machine(), flush=True)
    workdir = tempfile.mkdtemp(prefix="sktransfer-scale-")
    lines = []
    if args.only in (None, "pickles"):
        est = PretrainedFeatureExtractor().fit(paths[:2])
        blob = os.path.join(workdir, "extractor.pkl")
        Path(blob).write_bytes(pickle.dumps(est))
        cache = os.environ.get("SKTRANSFER_CACHE") or os.path.join(workdir, "cache")
        lines += ["| pickled | with tensors (bytes) | by name (bytes) |", "|---|---:|---:|"]
        lines += [f"| {what} | {before:,} | {after:,} |" for what, before, after in pickle_sizes(est, paths)]
        warm, cold = first_use(blob, paths, cache)
        lines += ["", "| first transform of 8 images in a fresh process, after unpickling | seconds |", "|---|---:|"]
        lines += [f"| ONNX graph in the disk cache | {warm:.2f} |", f"| empty cache (graph exported) | {cold:.2f} |"]
        lines += [""]
    if args.only in (None, "layouts"):
        est = PretrainedFeatureExtractor().fit(paths[:2])
        table, values = layouts(est, paths, cores, args.repeats, workdir)
        lines += table + [""] + sizes(values, workdir)
        print("\n".join(lines), flush=True)
    if args.only == "sizes":  # the sizes alone (the layouts give them too): one process's embeddings
        lines += sizes(PretrainedFeatureExtractor().fit(paths[:2]).transform(paths), workdir)
    if args.only in (None, "precisions"):
        lines += ([""] if lines else []) + precisions(paths, cores, args.repeats, workdir)
    if args.only in (None, "memory"):
        est = PretrainedFeatureExtractor().fit(paths[:2])
        lines += ["", f"Flat memory: dask_transform to Parquet on {cores} workers x 1 thread, replicated paths:", ""]
        lines += ["| replicated paths | seconds | peak RSS per worker (MiB) |", "|---:|---:|---|"]
        for size in (args.stream_images // 4, args.stream_images):
            many = [paths[i % len(paths)] for i in range(size)]
            seconds, rss = memory_run(est, many, cores, max(cores, size // 500), workdir)
            lines.append(f"| {size:,} | {seconds:.1f} | {', '.join(f'{r:.0f}' for r in rss)} |")
    table = "\n".join(lines)
    print()
    print(table)
    notes = (
        f"{cores} usable cores, {args.dataset} photos. Target: every LocalCluster layout >= 0.9x the process pool. "
        "The pools and the clusters are started and warmed (network loaded, a first batch run) before timing. "
        "The fixed cost is what the same run takes with an extractor answering zeros at once (no network; "
        "its Parquet parts hold zeros), interleaved with the timed runs."
    )
    _results.write(args.write_results, "Scale: dask against a process pool, per-core rates, sizes", table, notes=notes)


if __name__ == "__main__":
    main()

"""Beyond one process: pickle sizes, first use in a fresh process, dask workers, flat memory.

Measures, for the default extractor (EfficientNet-Lite0, packaged weights):

* the size of a fitted extractor's pickle, and of a Pipeline's, with the
  network's tensors (how earlier releases saved it) and by name (now);
* the first ``transform`` in a fresh process after unpickling, with the
  exported ONNX graph in the disk cache and with an empty cache;
* images/s of plain processes embedding a share each, started together:
  1 process x all cores against N processes x ``cores // N`` threads,
  interleaved (the better default layout of a machine);
* images/s and peak RSS per worker process: one process (``transform``,
  all cores), and ``sktransfer.parallel.dask_transform`` on a
  ``distributed.LocalCluster`` of 1 worker x all cores and of N workers x
  ``cores // N`` threads (the thread budget), median of ``--repeats``;
* peak RSS per worker when the list of images is replicated to
  ``--stream-images`` paths and to a quarter of that: it must stay flat.

The persistent store's figures (warm re-run, resume after a kill) are in
``benchmarks/embedding_store.py``.

    python benchmarks/scale.py --quick                      # smoke run, a minute
    python benchmarks/scale.py --limit 400 --dataset hymenoptera --only layouts
    python benchmarks/scale.py --write-results              # the table in RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _results
import numpy as np

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

# A worker for the thread-layout comparison: warms up, says so, waits for the
# go (so that concurrent workers start together), embeds its share.
_WORKER = r"""
import pickle, resource, sys, time
import torch
blob, paths, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
est = pickle.loads(open(blob, "rb").read())
paths = open(paths).read().split("\n")
est.transform(paths[:4])
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
est.transform(paths)
print(time.perf_counter() - t, flush=True)
"""


def image_paths(dataset, limit):
    from sktransfer.datasets import find_data_dir

    root = Path(find_data_dir(dataset, required=True)) / dataset
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return paths[:limit] if limit else paths


def fitted_extractor(paths):
    from sktransfer import PretrainedFeatureExtractor

    return PretrainedFeatureExtractor().fit(paths[:2])


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


def layout_run(blob, paths, processes, threads, cache):
    """Seconds for ``processes`` plain processes of ``threads`` threads to embed ``paths`` together."""
    env = {**os.environ, "SKTRANSFER_CACHE": cache, "PYTHONPATH": str(REPO)}
    shares, procs = [paths[i::processes] for i in range(processes)], []
    for share in shares:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write("\n".join(share))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, blob, fh.name, str(threads)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    seconds = max(float(proc.stdout.readline()) for proc in procs)
    for proc in procs:
        proc.wait()
    return seconds


def first_use(blob, paths, cache):
    run_child(blob, paths[:8], 1, 1, cache)  # fills the cache, if it was empty
    warm, _, _ = run_child(blob, paths[:8], 1, 1, cache)
    with tempfile.TemporaryDirectory() as empty:
        cold, _, _ = run_child(blob, paths[:8], 1, 1, empty)
    return warm, cold


def cluster_run(est, paths, n_workers, repeats, npartitions):
    """(median seconds, peak RSS MiB of each worker) of dask_transform on a LocalCluster.

    The workers run the thread budget of dask_transform: cores // workers.
    """
    import dask.dataframe as dd
    import distributed
    import pandas as pd

    from sktransfer.parallel import dask_transform

    with (
        distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warm = dd.from_pandas(pd.Series(paths[: 2 * n_workers], name="path"), npartitions=n_workers)
        dask_transform(est, warm).sum().compute()  # networks loaded, graphs built
        series = dd.from_pandas(pd.Series(paths, name="path"), npartitions=npartitions)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dask_transform(est, series).sum().compute()
            times.append(time.perf_counter() - start)
        rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return statistics.median(times), sorted(rss.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="flowers", choices=["flowers", "hymenoptera"])
    parser.add_argument("--limit", type=int, default=400, help="images timed per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the cluster")
    parser.add_argument("--stream-images", type=int, default=20_000, help="replicated paths for the memory check")
    parser.add_argument("--only", choices=["pickles", "layouts", "throughput", "memory"], default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few images, one repeat")
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.repeats, args.stream_images = 48, 1, 192

    from sktransfer.parallel._threads import usable_cores, worker_thread_budget

    cores = usable_cores()
    paths = image_paths(args.dataset, args.limit)
    print(_results.machine(), flush=True)
    est = fitted_extractor(paths)
    workdir = tempfile.mkdtemp(prefix="sktransfer-scale-")
    blob = os.path.join(workdir, "extractor.pkl")
    Path(blob).write_bytes(pickle.dumps(est))
    cache = os.environ.get("SKTRANSFER_CACHE") or os.path.join(workdir, "cache")
    lines = []

    if args.only in (None, "pickles"):
        lines += ["| pickled | with tensors (bytes) | by name (bytes) |", "|---|---:|---:|"]
        lines += [f"| {what} | {before:,} | {after:,} |" for what, before, after in pickle_sizes(est, paths)]
        warm, cold = first_use(blob, paths, cache)
        lines += ["", "| first transform of 8 images in a fresh process, after unpickling | seconds |", "|---|---:|"]
        lines += [f"| ONNX graph in the disk cache | {warm:.2f} |", f"| empty cache (graph exported) | {cold:.2f} |"]

    if args.only in (None, "layouts"):
        # Interleaved, so that a busy moment of a shared machine hits both layouts.
        n, layouts = len(paths), [(1, cores), (args.workers, worker_thread_budget(args.workers, cores=cores))]
        seconds = {layout: [] for layout in layouts}
        for _ in range(args.repeats):
            for layout in layouts:
                seconds[layout].append(layout_run(blob, paths, *layout, cache))
        lines += ["", f"{n} {args.dataset} images, plain processes started together, median of {args.repeats}:", ""]
        lines += ["| processes x threads | images/s |", "|---|---:|"]
        lines += [f"| {p} x {t} | {n / statistics.median(seconds[(p, t)]):.1f} |" for p, t in layouts]

    if args.only in (None, "throughput"):
        budget = worker_thread_budget(args.workers, cores=cores)
        n = len(paths)
        _, one, one_rss = run_child(blob, paths, cores, args.repeats, cache)
        rows = [("1 process, `transform`", f"1 x {cores}", one, [one_rss])]
        for workers, threads in ((1, cores), (args.workers, budget)):  # threads: the budget
            seconds, rss = cluster_run(est, paths, workers, args.repeats, npartitions=max(workers, n // 32))
            rows.append(("LocalCluster, `dask_transform`", f"{workers} x {threads}", seconds, rss))
        lines += ["", f"{n} {args.dataset} images, median of {args.repeats}:", ""]
        lines += ["| run | processes x threads | images/s | peak RSS per process (MiB) |", "|---|---|---:|---|"]
        for name, layout, seconds, rss in rows:
            lines.append(f"| {name} | {layout} | {n / seconds:.1f} | {', '.join(f'{r:.0f}' for r in rss)} |")

    if args.only in (None, "memory"):
        lines += ["", "| replicated paths | seconds | peak RSS per worker (MiB) |", "|---:|---:|---|"]
        for size in (args.stream_images // 4, args.stream_images):
            many = [paths[i % len(paths)] for i in range(size)]
            seconds, rss = cluster_run(est, many, args.workers, 1, npartitions=max(args.workers, size // 64))
            lines.append(f"| {size:,} | {seconds:.1f} | {', '.join(f'{r:.0f}' for r in rss)} |")

    table = "\n".join(lines)
    print()
    print(table)
    notes = (
        f"{cores} usable cores; the cluster's workers run {worker_thread_budget(args.workers, cores=cores)} "
        "thread(s) each by the thread budget, except in the 1-worker row."
    )
    _results.write(args.write_results, "Scale: pickles, dask workers, flat memory", table, notes=notes)


if __name__ == "__main__":
    main()

"""What a dask worker process sets up before it embeds: threads, malloc, its copy of the extractor.

Everything here runs inside worker processes (a task, or ``client.run``),
never in the application's process:

* the thread budget: ``cores // worker processes on this machine``
  compute threads, shared by the worker's task threads: each task runs the
  network on a stream of its own (:func:`~sktransfer.runtime.set_concurrent_callers`)
  and decodes (``num_workers="auto"`` follows ``torch.get_num_threads()``)
  with ``budget // task threads`` threads;
* glibc's allocator thresholds: dask's nanny starts every worker with
  ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap
  threshold at 128 KiB, so every batch-sized array is a fresh ``mmap``
  and its pages fault in again (about 350 page faults per image against 6,
  some 10% of throughput). Where that variable is set, the thresholds are
  raised once per process to where glibc's own dynamic thresholds would
  have grown (mmap 32 MiB, trim 64 MiB): up to 64 MiB of freed memory per
  allocator arena stays with the process instead of being returned at once;
* the extractor's copy: the extractor travels as its pickle, made once in
  the application's process per ``dask_transform`` (or ``warm_up``) call;
  a worker unpickles a pickle the first time it sees it and keeps that
  copy, its network loaded and its engine built, for every later task
  shipping the same bytes (the same extractor, unchanged, pickles to the
  same bytes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import platform
import threading
from collections import Counter, OrderedDict
from urllib.parse import urlparse

from ._threads import apply_thread_budget, worker_thread_budget

# glibc's mallopt parameters (malloc.h) and the values its dynamic
# thresholds reach at most on 64-bit: mmap 32 MiB, trim twice that.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
_MALLOC_DONE = False

_COPIES_LOCK = threading.Lock()
_COPIES = OrderedDict()  # pickle of an extractor -> the copy this worker made of it
_KEEP_COPIES = 2


def relax_malloc_trim() -> bool:
    """Raise glibc's trim and mmap thresholds once, where dask's nanny set ``MALLOC_TRIM_THRESHOLD_``.

    Returns True when the thresholds are (or were already) raised in this
    process; False outside glibc or without that variable, where nothing is
    changed.
    """
    global _MALLOC_DONE
    if _MALLOC_DONE:
        return True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # The mmap threshold first: a trim threshold below it would return freed blocks at once.
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _MALLOC_DONE = ok
    return ok


def processes_per_host(client=None):
    """Worker processes per machine of ``client`` (default: the current one), or None without a client."""
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):  # no distributed, or no client: local schedulers
            return None
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return dict(Counter(urlparse(address).hostname for address in workers))


def prepare_worker(hosts, worker=None):
    """In a task or ``client.run`` on a distributed worker: thread budget, streams, malloc thresholds.

    ``hosts`` is :func:`processes_per_host` of the client, ``worker`` the
    ``distributed.Worker`` (default: the one running this task). The
    process's budget, ``cores // processes on its machine``, is shared by
    its task threads: each runs the network and decodes with ``budget //
    task threads`` threads (at least 1) on a stream of its own. Outside a
    distributed worker (local schedulers) nothing is changed and None is
    returned; else the threads per task.
    """
    from ..runtime import set_concurrent_callers

    if not hosts:
        return None
    if worker is None:
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):
            return None
    budget = worker_thread_budget(hosts.get(urlparse(worker.address).hostname, 1))
    task_threads = max(1, int(worker.state.nthreads))
    threads = max(1, budget // task_threads)
    apply_thread_budget(threads)
    set_concurrent_callers(task_threads)
    relax_malloc_trim()
    return threads


def worker_copy(blob: bytes):
    """The extractor this worker process made from ``blob`` (its pickle): unpickled on first sight only.

    At most a few are kept, the most recently used.
    """
    with _COPIES_LOCK:
        known = _COPIES.get(blob)  # a bytes object caches its hash: task after task, a dict look-up
        if known is not None:
            _COPIES.move_to_end(blob)
            return known
    extractor = pickle.loads(blob)  # outside the lock: the first one may import the engines
    with _COPIES_LOCK:
        known = _COPIES.setdefault(blob, extractor)  # two task threads at once: both use the first
        _COPIES.move_to_end(blob)
        while len(_COPIES) > _KEEP_COPIES:
            _COPIES.popitem(last=False)
    return known

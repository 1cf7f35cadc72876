"""Threads per worker, so that workers x threads stay within the cores.

PyTorch and ONNX Runtime each start one compute thread per core. N worker
processes on one machine, each with a thread per core, run N times more
threads than there are cores and spend their time switching between them.
The extractor's engines size their pools from ``torch.get_num_threads()``
when they are created, so setting it once per worker, before the first
image, budgets both.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def worker_thread_budget(n_workers: int, *, cores: int | None = None) -> int:
    """Compute threads per worker process for ``n_workers`` processes on one machine.

    Parameters
    ----------
    n_workers : int
        Worker processes sharing the machine's cores.
    cores : int or None, default=None
        Cores to share; None: those this process may run on.

    Returns
    -------
    int
        ``max(1, cores // n_workers)``.

    Examples
    --------
    >>> from sktransfer.parallel import worker_thread_budget
    >>> worker_thread_budget(2, cores=2), worker_thread_budget(3, cores=8), worker_thread_budget(4, cores=2)
    (1, 2, 1)
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    if cores is None:
        cores = usable_cores()
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a positive int or None, got {cores!r}")
    return max(1, cores // n_workers)


def apply_thread_budget(threads: int) -> int:
    """Set this process's compute threads (PyTorch, hence the engines built after).

    Meant for worker processes that run the extractor (dask workers, Ray
    actors): it changes a process-wide setting, so call it there, not in
    an application's main process. Engines already built keep their pools.

    Parameters
    ----------
    threads : int
        Threads per process, e.g. from :func:`worker_thread_budget`.

    Returns
    -------
    int
        The previous number of threads.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    import torch

    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    return previous

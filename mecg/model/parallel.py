"""Many sessions in parallel: a process pool that works on one session per worker and streams results back.

``mecg spot``, ``mecg stats`` and ``mecg train``'s feature extraction call :func:`map_sessions`
with ``--jobs N``. Memory stays bounded: each worker holds one session's data at a time, at most
``2 x jobs`` sessions are in flight, and results come back one by one in the order of the input
(so the output equals a ``--jobs 1`` run's). Workers are started with forkserver (never fork: a
fork of a process whose other threads use HDF5 can crash inside HDF5), and each gets
``cores / jobs`` threads for torch, OpenCV and BLAS so the pool does not oversubscribe the cores.
Inside a worker the video front end works through its pieces in the worker itself instead of
starting a pool of its own (same pieces, same features).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Environment variables that set the thread count of BLAS/OpenMP libraries.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_job(jobs: int) -> int:
    """CPU threads each of ``jobs`` workers may use: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def _init_worker(threads: int) -> None:
    """Pool initializer: share the cores out and keep the front end from nesting a pool."""
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    import cv2

    from mecg.model import frontend

    cv2.setNumThreads(threads)
    frontend.limit_processes(1)
    import sys

    if "torch" in sys.modules:  # workers that need torch import it later and read OMP_NUM_THREADS
        sys.modules["torch"].set_num_threads(threads)


def map_sessions(fn: Callable[[T], R], items: Iterable[T], jobs: int = 1) -> Iterator[R]:
    """``fn(item)`` for every item, in item order; with ``jobs`` > 1 in that many worker processes.

    ``fn`` and the items must be picklable (module-level function, plain data). An exception
    raised by ``fn`` is raised here when its item's turn comes, and the work not started is
    cancelled. With ``jobs == 1`` everything runs in this process, one item at a time.
    """
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    jobs = min(jobs, len(items))
    ctx = multiprocessing.get_context("forkserver")
    ex = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads_per_job(jobs),))
    pending: dict[int, Future[Any]] = {}
    nxt = 0
    try:
        for i in range(len(items)):
            while nxt < len(items) and len(pending) < 2 * jobs:  # bounded in flight
                pending[nxt] = ex.submit(fn, items[nxt])
                nxt += 1
            yield pending.pop(i).result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)

"""BLAS threads chosen, not inherited: a run sets its thread count and records it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

__all__ = ["available_cores", "blas_threads"]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup pinning shows up here)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity API
        return os.cpu_count() or 1


@contextmanager
def blas_threads(threads: int) -> Iterator[int]:
    """Limit BLAS (OpenBLAS, MKL, BLIS) to ``threads`` threads inside the block; yield it.

    threadpoolctl changes the process-wide BLAS setting and restores it on exit. ValueError
    for fewer than 1 thread.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with threadpool_limits(limits=threads, user_api="blas"):
        yield threads

"""The Dask cluster a sweep runs on: an existing scheduler, or a LocalCluster for this run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.threads import available_cores

__all__ = ["dask_cluster", "warm_workers"]


@contextmanager
def dask_cluster(address: str | None = None, workers: int | None = None) -> Iterator[str]:
    """Yield a scheduler address: ``address`` as given, else a LocalCluster started here.

    The local cluster has one worker process per usable core (or ``workers``), one thread
    each (a trial's BLAS is pinned to 1 thread too), listens on 127.0.0.1 only, and is closed
    with its workers when the block exits, also on an exception (SIGTERM in the CLI).
    """
    if address:
        yield address
        return
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers or available_cores(),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,  # no bokeh; the Prefect UI shows the trials
    ) as cluster:
        yield str(cluster.scheduler_address)


def warm_workers(address: str, ref: Any) -> dict[str, float]:
    """Import the trial code and load the dataset on every worker before trials start.

    Returns worker address -> seconds it took; the first trial on each worker then measures
    training, not imports and I/O.
    """
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        return dict(client.run(_warm, ref))


def _warm(ref: Any) -> float:
    import time

    started = time.perf_counter()
    import prefect.task_engine  # noqa: F401  (what every trial needs first)

    from pipeline.trial import load_split

    load_split(ref)
    return round(time.perf_counter() - started, 3)

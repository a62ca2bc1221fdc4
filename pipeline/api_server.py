"""One Prefect API per run: the configured server, else a temporary one this process owns.

With no PREFECT_API_URL every process that reports to Prefect (the flow, and each Dask worker
of a sweep) would start its own temporary server on one SQLite file: ~20 s each, then
"database is locked". So the run starts one (Prefect's own SubprocessASGIServer, uvicorn on a
free loopback port), exports its URL to child processes, and stops it on the way out, also
when SIGTERM or SIGINT ends the run (the CLI turns both into exceptions).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

__all__ = ["PrefectApi", "prefect_api"]

_STARTUP_TIMEOUT_S = 120  # a fresh database migrates first; slow on a busy 2-core machine


@dataclass(frozen=True)
class PrefectApi:
    """The API URL every process of the run reports to; ``started_s`` > 0 when we started it."""

    url: str
    owned: bool
    started_s: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drain_reporters(timeout_s: float = 5.0) -> None:
    """Send queued run logs and events while the server is still up (what Prefect's test
    harness does): drained at interpreter exit instead, they retry a stopped server and hold
    the process for minutes after a SIGTERM."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


@contextmanager
def prefect_api() -> Iterator[PrefectApi]:
    """Yield the API to use; a temporary server started here is stopped on exit, however.

    Sets PREFECT_API_URL in os.environ while it runs, so processes started meanwhile (a
    LocalCluster's workers) inherit it. Raises RuntimeError when the server does not start.
    """
    configured = get_current_settings().api.url
    if configured:
        yield PrefectApi(str(configured), owned=False, started_s=0.0)
        return
    from prefect.server.api.server import SubprocessASGIServer

    previous = os.environ.get("PREFECT_API_URL")
    server = SubprocessASGIServer(port=_free_port())
    started = time.perf_counter()
    try:
        server.start(timeout=_STARTUP_TIMEOUT_S)
        api = PrefectApi(server.api_url, owned=True, started_s=time.perf_counter() - started)
        os.environ["PREFECT_API_URL"] = api.url
        with temporary_settings(updates={PREFECT_API_URL: api.url}):
            yield api
    finally:
        _drain_reporters()
        server.stop()
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous

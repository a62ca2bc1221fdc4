"""Replicas under load: servers on 127.0.0.1 with /metrics, each answering a request stream."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from registry import Registry
from service.client import DigitsClient
from tests.helpers.servers import Running, start
from tests.helpers.toy_models import random_images


@contextlib.contextmanager
def replicas_under_load(
    registry: Registry, count: int = 2, poll_interval_s: float = 0.1
) -> Iterator[list[Running]]:
    """``count`` servers on ``registry``, each sent unpinned requests until the block ends.

    Fails the caller (AssertionError at exit) if any request failed meanwhile.
    """
    servers = [
        start(registry, poll_interval_s=poll_interval_s, metrics_port=0) for _ in range(count)
    ]
    stop = threading.Event()
    failures: list[BaseException] = []
    images = random_images(4, seed=3)

    def load(target: str) -> None:
        with DigitsClient(target, timeout=10) as client:
            while not stop.is_set():
                try:
                    client.predict(images)
                except BaseException as err:
                    failures.append(err)
                stop.wait(0.002)

    threads = [threading.Thread(target=load, args=(s.target,)) for s in servers * 2]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for server in servers:
            server.close()
    assert not failures, failures[:3]  # zero failed requests throughout


def metrics_urls(servers: list[Running]) -> list[str]:
    return [f"http://127.0.0.1:{s.server.metrics_port}/metrics" for s in servers]

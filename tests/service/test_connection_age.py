"""max_connection_age: the server closes aged connections, clients reconnect without failing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
import pytest

from registry import Registry
from service.client import DigitsClient
from tests.helpers.servers import Running
from tests.helpers.toy_models import random_images

pytestmark = pytest.mark.integration


def _ready_transitions(target: str, seconds: float) -> tuple[int, list[str]]:
    """(times the channel became READY, failed calls) while predicting for ``seconds``."""
    ready = [0]
    lock = threading.Lock()

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state == grpc.ChannelConnectivity.READY:
            with lock:
                ready[0] += 1

    failures: list[str] = []
    with DigitsClient(target, timeout=5) as client:
        client._channel.subscribe(watch)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                client.predict(random_images(1))
            except Exception as err:
                failures.append(repr(err))
            time.sleep(0.02)
        client._channel.unsubscribe(watch)
    return ready[0], failures


@pytest.mark.parametrize(("age_s", "reconnects"), [(0.0, False), (0.4, True)])
def test_aged_connections_are_closed_and_reopened_without_failures(
    registry: Registry, start_server: Callable[..., Running], age_s: float, reconnects: bool
) -> None:
    # The grace lets calls in flight on an aged connection finish: 1 s, not less, because under
    # a full test run's load a call could take longer than 0.2 s (one CI run failed one so).
    running = start_server(registry, max_connection_age_s=age_s, max_connection_age_grace_s=1.0)
    ready, failures = _ready_transitions(running.target, 2.0)
    assert failures == [], failures
    assert (ready > 1) is reconnects, ready

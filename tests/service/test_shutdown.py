"""SIGTERM on a real `python -m service` process drains in-flight requests, then exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry import Registry
from service.client import DigitsClient, ServiceError
from tests.helpers.toy_models import random_images

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _start(registry: Registry, drain_delay_s: float = 1.0) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "DIGITS_REGISTRY": str(registry.root), "DIGITS_PORT": "0", "DIGITS_METRICS_PORT": "-1",
        "DIGITS_BATCHING": "true",
        "DIGITS_MAX_DELAY_US": "700000",  # every request waits 0.7 s for company: in flight
        "DIGITS_GRACE_S": "10", "DIGITS_ENABLE_V2": "false", "DIGITS_LOG_FORMAT": "json",
        "DIGITS_DRAIN_DELAY_S": str(drain_delay_s),
    }  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    for line in process.stderr:
        record = json.loads(line)
        if record["message"] == "listening":
            return process, record["address"]
        assert time.monotonic() < deadline, "server did not start"
    raise AssertionError(f"server exited with {process.wait()}")


def test_sigterm_drains_in_flight_requests(registry: Registry) -> None:
    process, target = _start(registry)
    try:
        with DigitsClient(target, timeout=15) as client, ThreadPoolExecutor(4) as pool:
            assert client.health() == "SERVING"
            in_flight = [pool.submit(client.predict, random_images(2)) for _ in range(4)]
            time.sleep(0.3)  # the requests are now waiting in the server's batcher
            process.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            # The drain delay: health says NOT_SERVING, new requests are still answered...
            assert client.health() == "NOT_SERVING"
            assert client.predict(random_images(1)).version == 1
            time.sleep(1.0)
            # ...then the port refuses them while the in-flight ones finish.
            with pytest.raises(ServiceError) as refused:
                client.predict(random_images(1))
            assert refused.value.code.name == "UNAVAILABLE"
            assert [f.result(15).version for f in in_flight] == [1, 1, 1, 1]
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None
        messages = [json.loads(line)["message"] for line in process.stderr]
        assert "draining" in messages and messages[-1] == "digits server stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigint_skips_the_drain_delay(registry: Registry) -> None:
    process, _ = _start(registry, drain_delay_s=30.0)
    try:
        start = time.monotonic()
        process.send_signal(signal.SIGINT)  # a person at a terminal: no load balancer to wait for
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - start < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

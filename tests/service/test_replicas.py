"""Three `digits serve` processes on one S3 registry behind one round-robin client target."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from registry import Registry
from service.client import DigitsClient, ServiceError
from tests.helpers.replicas import start_replicas, stop_replicas
from tests.helpers.seaweedfs import SeaweedS3
from tests.helpers.toy_models import publish, random_images

pytestmark = pytest.mark.integration

POLL_S = 0.5


def test_every_replica_converges_on_a_promotion_with_zero_failed_requests(
    s3_url: str, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    registry = Registry(s3_url)
    publish(registry, seed=1)
    replicas = start_replicas(3, s3_url, tmp_path, s3_server.env(), POLL_S)
    try:
        target = "ipv4:" + ",".join(r.target for r in replicas)
        answers: list[int] = []
        failures: list[str] = []
        stop = threading.Event()

        def send() -> None:
            images = random_images(2)
            with DigitsClient(target, timeout=5) as client:
                while not stop.is_set():
                    try:
                        answers.append(client.predict(images).version)
                    except ServiceError as err:
                        failures.append(str(err))

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)
        publish(registry, seed=2)  # promotes version 2 while requests flow
        deadline = time.monotonic() + 30
        pending = list(replicas)
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if r.served_version() != 2]
            time.sleep(0.05)
        time.sleep(1.0)
        stop.set()
        sender.join(timeout=30)
        assert not pending, "a replica never served the promoted version"
        assert failures == []
        assert answers[0] == 1 and answers[-1] == 2 and set(answers) == {1, 2}
        shares = [r.predict_count() for r in replicas]
        assert sum(shares) == len(answers)
        assert all(share > len(answers) / 10 for share in shares), shares
    finally:
        stop_replicas(replicas)

"""Canary on two replicas: the traffic split, sticky routing keys, abort, zero failed requests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from registry import Registry, traffic
from service.client import DigitsClient
from service.client.client import encode_images
from service.generated.digits.v1 import digits_pb2 as pb
from tests.helpers.servers import Running
from tests.helpers.toy_models import publish, random_images

pytestmark = pytest.mark.integration

POLL_S = 0.2  # short, yet two polls outlast a busy CI machine's scheduling delays


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def replicas(registry: Registry, start_server: Callable[..., Running]) -> list[Running]:
    """Two servers on the same registry, version 1 in production and version 2 published."""
    publish(registry, seed=2, production=False)
    return [start_server(registry, poll_interval_s=POLL_S) for _ in range(2)]


def _start_canary(registry: Registry, replicas: list[Running], percent: float) -> None:
    traffic.set_canary(registry, "digits", 2, percent)

    def everyone_sees_it() -> bool:
        routings = [r.server.core.models.routing for r in replicas]
        return all(r is not None and r.canary is not None for r in routings)

    _wait_for(everyone_sees_it)


def test_canary_gets_its_percent_of_unpinned_requests(
    registry: Registry, replicas: list[Running]
) -> None:
    _start_canary(registry, replicas, 30)
    images = random_images(1)
    versions = Counter(replicas[i % 2].client.predict(images).version for i in range(1000))
    assert set(versions) == {1, 2}
    assert 250 <= versions[2] <= 350, versions
    for replica in replicas:  # both replicas split, and their metrics say so per version
        text = replica.server.core.metrics.exposition().decode()
        assert 'digits_version_requests_total{outcome="ok",version="2"}' in text
        assert 'digits_version_latency_seconds_count{version="1"}' in text


def test_same_routing_key_always_gets_the_same_version(
    registry: Registry, replicas: list[Running]
) -> None:
    _start_canary(registry, replicas, 30)
    images = random_images(1)
    request = pb.PredictRequest(images=encode_images(images))
    chosen: dict[str, int] = {}
    for n in range(60):
        key = f"user-{n}"
        seen = set()
        for replica in replicas:
            seen.add(replica.client.predict(images, routing_key=key).version)
            seen.add(replica.client.predict(images, request_id=key).version)  # id = key too
            response = replica.stub.Predict(request, metadata=(("x-routing-key", key),))
            seen.add(response.version)
            # The metadata key wins over a request id that would route elsewhere.
            other = pb.PredictRequest(images=request.images, request_id=f"{key}-other")
            response = replica.stub.Predict(other, metadata=(("x-routing-key", key),))
            seen.add(response.version)
        assert len(seen) == 1, (key, seen)
        chosen[key] = seen.pop()
    assert set(chosen.values()) == {1, 2}  # keys do spread over both versions
    traffic.set_canary(registry, "digits", 2, 60)  # a bigger canary keeps its keys
    _wait_for(lambda: all(r.server.core.models.routing.canary_percent == 60 for r in replicas))
    for key, version in chosen.items():
        if version == 2:
            assert replicas[0].client.predict(images, routing_key=key).version == 2


def test_abort_returns_all_traffic_within_two_polls_and_fails_nothing(
    registry: Registry, replicas: list[Running]
) -> None:
    _start_canary(registry, replicas, 50)
    answers: list[tuple[float, int]] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    images = random_images(2)

    def hammer(target: str) -> None:
        with DigitsClient(target, timeout=10) as client:
            while not stop.is_set():
                sent = time.monotonic()  # when routed matters, not when answered
                try:
                    answers.append((sent, client.predict(images).version))
                except (grpc.RpcError, Exception) as err:
                    failures.append(err)

    threads = [threading.Thread(target=hammer, args=(r.target,)) for r in replicas * 2]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: sum(v == 2 for _, v in answers) >= 50)
        traffic.abort_canary(registry, "digits", reason="test")
        aborted_at = time.monotonic()
        polls = [r.server.core.models.polls for r in replicas]
        # Two polls of every replica (counted, not timed: on a busy machine a poll can be late).
        _wait_for(
            lambda: all(
                r.server.core.models.polls >= n + 2 for r, n in zip(replicas, polls, strict=True)
            )
        )
        two_polls = time.monotonic()
        _wait_for(lambda: sum(t > two_polls for t, _ in answers) >= 100)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not failures, failures[:3]
    late = [t - aborted_at for t, v in answers if v == 2 and t > two_polls]
    assert not late, f"{len(late)} requests reached the canary after two polls (+{max(late):.3f} s)"
    assert {v for t, v in answers if t > two_polls} == {1}
    assert two_polls - aborted_at < 20 * POLL_S  # and the two polls came about on time


def test_a_stream_stays_on_one_version(registry: Registry, replicas: list[Running]) -> None:
    _start_canary(registry, replicas, 50)
    batches = [random_images(1, seed=n) for n in range(12)]
    seen = []
    for _ in range(20):  # 20 streams of 12 messages: each on one version, both versions used
        versions = {p.version for p in replicas[0].client.predict_stream(batches)}
        assert len(versions) == 1
        seen.append(versions.pop())
    assert set(seen) == {1, 2}


def test_a_raw_stream_without_keys_is_routed_as_one(
    registry: Registry, replicas: list[Running]
) -> None:
    _start_canary(registry, replicas, 50)
    images = encode_images(random_images(1))
    seen = []
    for _ in range(20):  # message ids "0".."5" in every stream: the server keys the stream
        messages = [pb.PredictRequest(images=images, request_id=str(i)) for i in range(6)]
        versions = {r.version for r in replicas[1].stub.PredictStream(iter(messages))}
        assert len(versions) == 1
        seen.append(versions.pop())
    assert set(seen) == {1, 2}


def test_canary_and_abort_on_an_s3_registry(
    s3_url: str, start_server: Callable[..., Running], tmp_path: Path
) -> None:
    registry = Registry(s3_url)
    publish(registry, seed=1)
    publish(registry, seed=2, production=False)
    running = start_server(registry, poll_interval_s=POLL_S, cache_dir=tmp_path / "cache")
    _start_canary(registry, [running], 50)
    images = random_images(1)
    versions = Counter(running.client.predict(images).version for _ in range(200))
    assert 60 <= versions[2] <= 140, versions
    traffic.abort_canary(registry, "digits")
    polls = running.server.core.models.polls
    _wait_for(lambda: running.server.core.models.polls >= polls + 2)
    assert {running.client.predict(images).version for _ in range(50)} == {1}

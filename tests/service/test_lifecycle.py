"""Health transitions, hot reload under load, refused corrupt versions, model description RPCs."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from registry import Registry
from service.client import DigitsClient, ServiceError
from service.generated.digits.v1 import digits_pb2 as pb
from service.serving.model import Predictor
from tests.helpers.servers import Running
from tests.helpers.toy_models import corrupt, publish, random_images, toy_params

pytestmark = pytest.mark.integration

SERVICE = "digits.v1.DigitClassifier"


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_health_not_serving_until_a_model_is_published(
    tmp_path: Path, start_server: Callable[..., Running]
) -> None:
    registry = Registry(tmp_path / "models")
    running = start_server(registry)
    assert running.client.health("") == "NOT_SERVING"
    assert running.client.health(SERVICE) == "NOT_SERVING"
    assert running.client.health("no.such.Service") == "SERVICE_UNKNOWN"
    publish(registry, seed=1)
    _wait_for(lambda: running.client.health(SERVICE) == "SERVING")
    assert running.client.health("") == "SERVING"
    assert running.client.predict(random_images(1)).version == 1


def test_health_not_serving_while_draining(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry)
    assert running.client.health() == "SERVING"
    stopper = threading.Thread(target=running.server.stop, args=(5.0, 1.0))  # 1 s drain delay
    stopper.start()
    _wait_for(lambda: running.client.health() == "NOT_SERVING", timeout=0.9)
    assert running.client.health(SERVICE) == "NOT_SERVING"
    assert running.client.predict(random_images(1)).version == 1  # still drained, not dropped
    stopper.join(10)
    with pytest.raises(ServiceError):
        running.client.health()


def test_hot_reload_under_load_fails_no_request(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry)
    images = random_images(3)
    expected = {1: running.client.predict(images).probabilities}
    stop = threading.Event()
    versions: Counter[int] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def hammer() -> None:
        with DigitsClient(running.target, timeout=10) as client:
            while not stop.is_set():
                try:
                    result = client.predict(images)
                    assert np.allclose(result.probabilities, expected[result.version], atol=1e-6)
                    with lock:
                        versions[result.version] += 1
                except BaseException as err:
                    failures.append(err)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: versions[1] >= 40)
        new = publish(registry, seed=7, production=False)
        expected[new] = Predictor(toy_params(7)).predict_proba(images.reshape(3, 784))
        registry.set_alias("digits", "production", new)
        _wait_for(lambda: versions[new] >= 40)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not failures, failures[:3]
    assert running.client.predict(images).version == new
    assert running.server.core.metrics.reloads._value.get() == 1


def test_corrupt_new_version_is_refused_and_old_keeps_serving(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry)
    bad = publish(registry, seed=3, production=False)
    corrupt(registry, bad)
    # A disk fault after the promotion (promote itself refuses a corrupt version).
    registry.set_alias("digits", "production", bad, verify=False)
    failures = running.server.core.metrics.reload_failures
    _wait_for(lambda: failures._value.get() == 1)
    assert running.client.predict(random_images(2)).version == 1
    assert running.client.health() == "SERVING"
    good = publish(registry, seed=4)  # the next good promotion is picked up as usual
    _wait_for(lambda: running.client.predict(random_images(1)).version == good)
    assert failures._value.get() == 1


def test_pinned_versions_and_aliases(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry)
    two = publish(registry, seed=2)
    _wait_for(lambda: running.client.predict(random_images(1)).version == two)
    registry.set_alias("digits", "staging", 1)
    images = random_images(2)
    assert running.client.predict(images, version=1).version == 1
    _wait_for(lambda: running.client.predict(images, alias="staging").version == 1)
    assert running.client.predict(images, alias="latest").version == two
    np.testing.assert_allclose(
        running.client.predict(images, version=1).probabilities,
        Predictor(toy_params(1)).predict_proba(images.reshape(2, 784)),
        atol=1e-6,
    )


def Predictor_of(seed: int):
    from service.serving.model import Predictor

    return Predictor(toy_params(seed))


def test_get_model_and_list_models(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry)
    publish(registry, seed=2, production=False)
    registry.set_alias("digits", "staging", 2)
    info = running.client.get_model()
    assert (info.name, info.version, info.serving) == ("digits", 1, True)
    assert info.aliases == ("production",) and info.layer_sizes == (784, 128, 40, 10)
    assert info.metrics == {"accuracy": pytest.approx(0.51)} and info.loaded_at is not None
    assert info.manifest["seed"] == 1 and info.created_at
    staging = running.client.get_model(alias="staging")
    assert (staging.version, staging.serving, staging.loaded_at) == (2, False, None)
    models = running.client.list_models()
    assert [(m.version, m.aliases, m.serving) for m in models] == [
        (1, ("production",), True),
        (2, ("staging",), False),
    ]


def test_open_streams_are_capped_and_health_still_answers(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry, max_streams=2)
    request = pb.PredictRequest(images=pb.Tensor(data=bytes(784), dtype=1, shape=[1, 784]))
    outboxes: list[queue.Queue] = []
    streams = []
    for _ in range(2):  # two long-lived streams: each holds a handler thread
        outbox: queue.Queue = queue.Queue()
        outbox.put(request)
        responses = running.stub.PredictStream(iter(outbox.get, None), timeout=10)
        assert next(responses).version == 1
        outboxes.append(outbox)
        streams.append(responses)
    with pytest.raises(grpc.RpcError) as err:
        next(running.stub.PredictStream(iter([request]), timeout=10))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit 2" in err.value.details()
    assert running.client.health() == "SERVING"
    assert running.client.predict(random_images(1)).version == 1
    outboxes[0].put(None)  # close one stream: its slot frees up
    assert list(streams[0]) == []
    assert len(list(running.stub.PredictStream(iter([request]), timeout=10))) == 1
    outboxes[1].put(None)


def test_cancelled_stream_frees_its_slot(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry, max_streams=1)
    request = pb.PredictRequest(images=pb.Tensor(data=bytes(784), dtype=1, shape=[1, 784]))
    outbox: queue.Queue = queue.Queue()
    outbox.put(request)
    responses = running.stub.PredictStream(iter(outbox.get, None), timeout=10)
    assert next(responses).version == 1
    responses.cancel()  # the client goes away without half-closing

    def new_stream_works() -> bool:
        try:
            return len(list(running.stub.PredictStream(iter([request]), timeout=5))) == 1
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

    _wait_for(new_stream_works, timeout=10)
    outbox.put(None)

"""Every bad request gets its status code and a message naming the problem; the server lives on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from service.observability.metrics import ServiceMetrics
from service.rpc.calls import handle_errors
from tests.helpers.servers import Running, start
from tests.helpers.toy_models import corrupt, publish

pytestmark = pytest.mark.integration

OK_IMAGES = pb.Tensor(data=bytes(784), dtype=pb.DTYPE_UINT8, shape=[1, 784])
Code = grpc.StatusCode


def _tensor(data: bytes, dtype: int = pb.DTYPE_UINT8, shape: tuple[int, ...] = (1, 784)) -> dict:
    return {"images": pb.Tensor(data=data, dtype=dtype, shape=shape)}


def _floats(value: float) -> bytes:
    pixels = np.full((1, 784), 0.5, dtype="<f4")
    pixels[0, 7] = value
    return pixels.tobytes()


BAD_REQUESTS = {
    "truncated bytes": (_tensor(bytes(783)), "783 bytes, expected 784"),
    "extra bytes": (_tensor(bytes(785)), "785 bytes, expected 784"),
    "truncated float32": (_tensor(bytes(784 * 4 - 2), pb.DTYPE_FLOAT32), "expected 3136"),
    "unspecified dtype": (_tensor(bytes(784), pb.DTYPE_UNSPECIFIED), "DTYPE_UNSPECIFIED"),
    "unknown dtype number": (_tensor(bytes(784), 42), "unknown images dtype 42"),
    "no images": ({}, "the request has no images"),
    "empty batch": (_tensor(b"", shape=(0, 784)), "empty batch"),
    "over the limit": (_tensor(bytes(9 * 784), shape=(9, 784)), "over the limit of 8"),
    "bad shape": (_tensor(bytes(784), shape=(28, 28)), "got [28, 28]"),
    "NaN": (_tensor(_floats(np.nan), pb.DTYPE_FLOAT32), "NaN/Inf"),
    "Inf": (_tensor(_floats(np.inf), pb.DTYPE_FLOAT32), "NaN/Inf"),
    "out of range": (_tensor(_floats(1.01), pb.DTYPE_FLOAT32), "in [0, 1]"),
    "top_k 0": ({"images": OK_IMAGES, "top_k": 0}, "top_k must be between 1 and 10"),
    "top_k 11": ({"images": OK_IMAGES, "top_k": 11}, "got 11"),
    "version 0": ({"images": OK_IMAGES, "version": 0}, "version must be"),
    "malformed alias": ({"images": OK_IMAGES, "alias": "../etc"}, "alias"),
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One server for the module: version 1 in production, 8 images and 64 KiB per request."""
    registry = Registry(tmp_path_factory.mktemp("small") / "models")
    publish(registry, seed=1)
    running = start(registry, max_images=8, max_message_bytes=64 * 1024)
    yield running
    running.close()


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_input_is_invalid_argument(small: Running, case: str) -> None:
    fields, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as err:
        small.stub.Predict(pb.PredictRequest(**fields), timeout=5)
    assert err.value.code() == Code.INVALID_ARGUMENT, err.value.details()
    assert message in err.value.details()
    assert small.stub.Predict(pb.PredictRequest(images=OK_IMAGES), timeout=5).version == 1


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [({"version": 7}, Code.NOT_FOUND, "no version 7"),
     ({"alias": "staging"}, Code.NOT_FOUND, "no alias 'staging'")],
)  # fmt: skip
def test_unknown_model_reference_is_not_found(
    small: Running, ref: dict, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        small.stub.Predict(pb.PredictRequest(images=OK_IMAGES, **ref), timeout=5)
    assert err.value.code() == code and message in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        small.stub.GetModel(pb.GetModelRequest(**ref), timeout=5)
    assert err.value.code() == code


def test_errors_sent_to_clients_do_not_name_the_registry_root(small: Running) -> None:
    root = str(small.server.core.models.registry.location)
    for request in (pb.PredictRequest(images=OK_IMAGES, version=99),
                    pb.GetModelRequest(version=99)):  # fmt: skip
        method = (
            small.stub.Predict if isinstance(request, pb.PredictRequest) else small.stub.GetModel
        )
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=5)
        details = err.value.details()
        assert err.value.code() == Code.NOT_FOUND
        assert "no version 99" in details and "(versions: 1" in details
        assert root not in details and "/" not in details, details


def test_corrupt_pinned_version_is_failed_precondition(small: Running) -> None:
    registry = small.server.core.models.registry
    version = publish(registry, seed=2, production=False)
    corrupt(registry, version)
    with pytest.raises(grpc.RpcError) as err:
        small.stub.Predict(pb.PredictRequest(images=OK_IMAGES, version=version), timeout=5)
    assert err.value.code() == Code.FAILED_PRECONDITION
    assert small.client.predict(np.zeros((1, 784), np.uint8)).version == 1


def test_message_over_the_limit_is_resource_exhausted(small: Running) -> None:
    big = pb.PredictRequest(images=pb.Tensor(data=bytes(70_000), dtype=pb.DTYPE_UINT8))
    with pytest.raises(grpc.RpcError) as err:
        small.stub.Predict(big, timeout=5)
    assert err.value.code() == Code.RESOURCE_EXHAUSTED
    assert small.stub.Predict(pb.PredictRequest(images=OK_IMAGES), timeout=5).version == 1


def test_no_model_is_unavailable(tmp_path: Path, start_server: Callable[..., Running]) -> None:
    empty = start_server(Registry(tmp_path / "empty"))
    with pytest.raises(grpc.RpcError) as err:
        empty.stub.Predict(pb.PredictRequest(images=OK_IMAGES), timeout=5)
    assert err.value.code() == Code.UNAVAILABLE and "no version" in err.value.details()


def test_deadline_is_honoured(registry: Registry, start_server: Callable[..., Running]) -> None:
    # A 1 s batching delay holds the request past its 0.2 s deadline.
    slow = start_server(registry, batching=True, max_delay_us=1_000_000)
    with pytest.raises(grpc.RpcError) as err:
        slow.stub.Predict(pb.PredictRequest(images=OK_IMAGES), timeout=0.2)
    assert err.value.code() == Code.DEADLINE_EXCEEDED
    assert slow.stub.Predict(pb.PredictRequest(images=OK_IMAGES), timeout=5).version == 1


def test_bad_request_ends_a_stream_with_its_code(small: Running) -> None:
    requests = [pb.PredictRequest(images=OK_IMAGES), pb.PredictRequest(**_tensor(bytes(3)))]
    responses = small.stub.PredictStream(iter(requests), timeout=5)
    assert next(responses).version == 1
    with pytest.raises(grpc.RpcError) as err:
        next(responses)
    assert err.value.code() == Code.INVALID_ARGUMENT


class _Exploding:
    """A test-only adapter whose handler fails unexpectedly, served through handle_errors."""

    def __init__(self) -> None:
        self.observer = ServiceMetrics()

    @handle_errors("Explode")
    async def explode(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("secret internal detail")

    def register(self, server: grpc.aio.Server, core: object) -> list[str]:
        handler = grpc.unary_unary_rpc_method_handler(self.explode)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Exploding", {"Explode": handler})]
        )
        return []


def test_unexpected_error_is_generic_internal(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    adapter = _Exploding()
    running = start_server(registry, registrations=[adapter.register])
    explode = running.channel.unary_unary("/test.Exploding/Explode")
    with pytest.raises(grpc.RpcError) as err:
        explode(b"x", timeout=5)
    assert err.value.code() == Code.INTERNAL
    assert "secret" not in err.value.details() and "request id" in err.value.details()
    assert adapter.observer.exposition().count(b'code="INTERNAL",method="Explode"') == 1
    assert running.client.predict(np.zeros((1, 784), np.uint8)).version == 1


def test_port_in_use_is_an_os_error(small: Running, tmp_path: Path) -> None:
    from service.rpc.server import create_server
    from service.settings import ServiceSettings

    settings = ServiceSettings(port=small.port, registry=tmp_path, enable_v2=False)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{small.port}"):
        create_server(settings)


def test_handle_errors_refuses_a_synchronous_handler() -> None:
    # The server is grpc.aio: a plain function would block its event loop.
    with pytest.raises(TypeError, match="needs an async def"):
        handle_errors("Sync")(lambda self, request, context: request)

"""The V2 servicer in a real in-process server, called with our own generated V2 stubs.

What tritonclient cannot reach easily lives here: readiness before a model exists, hot reload,
aliases as versions, request ids, limits, health, reflection and metrics of the V2 service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry import Registry
from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.generated.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.helpers.oracle import reference_proba
from tests.helpers.servers import Running
from tests.helpers.toy_models import publish, random_images, toy_params

pytestmark = pytest.mark.integration

V2 = "inference.GRPCInferenceService"


def _stub(running: Running) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(running.channel)


def _infer_request(
    images: np.ndarray, version: str = "", request_id: str = ""
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="digits", model_version=version, id=request_id)
    datatype = "UINT8" if images.dtype == np.uint8 else "FP32"
    request.inputs.add(name="images", datatype=datatype, shape=list(images.shape))
    request.raw_input_contents.append(np.ascontiguousarray(images).tobytes())
    return request


def _probabilities(response: pb.ModelInferResponse) -> np.ndarray:
    assert response.outputs[0].name == "probabilities"
    return np.frombuffer(response.raw_output_contents[0], "<f4").reshape(-1, 10)


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def v2(registry: Registry, start_server: Callable[..., Running]) -> Running:
    """A server on the `registry` fixture (version 1 = production) with the V2 endpoint on."""
    return start_server(registry, enable_v2=True, max_images=16)


def test_v2_is_off_when_disabled(served: Running) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        _stub(served).ServerLive(pb.ServerLiveRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_not_ready_until_a_model_is_published_then_hot_reloaded(
    tmp_path: Path, start_server: Callable[..., Running]
) -> None:
    registry = Registry(tmp_path / "empty")
    running = start_server(registry, enable_v2=True)
    stub = _stub(running)
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
    assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="digits"), timeout=5).ready
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(_infer_request(random_images(1)), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE

    publish(registry, seed=1)
    _wait_for(lambda: stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)
    assert stub.ModelReady(pb.ModelReadyRequest(name="digits"), timeout=5).ready
    assert running.client.health(V2) == "SERVING"
    assert stub.ModelInfer(_infer_request(random_images(1)), timeout=5).model_version == "1"


def test_new_production_version_is_served_after_hot_reload(v2: Running, registry: Registry) -> None:
    stub = _stub(v2)
    images = random_images(3, seed=4)
    assert stub.ModelInfer(_infer_request(images), timeout=5).model_version == "1"
    publish(registry, seed=2)
    _wait_for(lambda: stub.ModelInfer(_infer_request(images), timeout=5).model_version == "2")
    response = stub.ModelInfer(_infer_request(images), timeout=5)
    expected = reference_proba(toy_params(2), images.reshape(3, 784).astype(np.float32) / 255.0)
    np.testing.assert_allclose(_probabilities(response), expected, atol=1e-6)


def test_aliases_work_as_versions(v2: Running, registry: Registry) -> None:
    publish(registry, seed=2, production=False)
    stub = _stub(v2)
    images = random_images(2)
    assert (
        stub.ModelInfer(_infer_request(images, version="production"), timeout=5).model_version
        == "1"
    )
    assert stub.ModelInfer(_infer_request(images, version="latest"), timeout=5).model_version == "2"
    assert stub.ModelReady(pb.ModelReadyRequest(name="digits", version="latest"), timeout=5).ready
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="digits", version="2"), timeout=5)
    assert list(metadata.versions) == ["1", "2"]
    for bad in ("99", "no-such-alias"):
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelInfer(_infer_request(images, version=bad), timeout=5)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="digits", version=bad), timeout=5)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_request_id_is_echoed_and_float_pixels_match_the_forward_pass(v2: Running) -> None:
    images = random_images(4, seed=9).astype(np.float32) / 255.0
    response = _stub(v2).ModelInfer(_infer_request(images, request_id="abc-1"), timeout=5)
    assert (response.id, response.model_name) == ("abc-1", "digits")
    expected = reference_proba(toy_params(1), images.reshape(4, 784))
    np.testing.assert_allclose(_probabilities(response), expected, atol=1e-6)
    labels = np.frombuffer(response.raw_output_contents[1], "<i8")
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (random_images(17), "over the limit of 16"),
        (np.full((1, 784), np.nan, np.float32), "NaN"),
        (np.full((1, 784), 2.0, np.float32), "[0, 1]"),
    ],
)
def test_digits_v1_limits_apply(v2: Running, images: np.ndarray, message: str) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        _stub(v2).ModelInfer(_infer_request(images), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in exc.value.details()


def test_concurrent_requests_all_succeed_with_the_right_answer(v2: Running) -> None:
    stub = _stub(v2)
    batches = [random_images(1 + i % 3, seed=i) for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda b: stub.ModelInfer(_infer_request(b), timeout=10), batches)
        )
    for batch, response in zip(batches, responses, strict=True):
        flat = batch.reshape(len(batch), 784).astype(np.float32) / 255.0
        np.testing.assert_allclose(
            _probabilities(response), reference_proba(toy_params(1), flat), atol=1e-6
        )


def test_health_reflection_and_metrics_cover_the_v2_service(v2: Running) -> None:
    assert v2.client.health(V2) == "SERVING"
    reflection = reflection_pb2_grpc.ServerReflectionStub(v2.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = reflection.ServerReflectionInfo(iter([request]), timeout=5)
    assert V2 in {service.name for service in reply.list_services_response.service}

    stub = _stub(v2)
    stub.ModelInfer(_infer_request(random_images(2)), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(_infer_request(random_images(17)), timeout=5)
    metrics = v2.server.core.metrics.exposition().decode()
    assert 'digits_requests_total{code="OK",method="ModelInfer"} 1.0' in metrics
    assert 'digits_requests_total{code="INVALID_ARGUMENT",method="ModelInfer"} 1.0' in metrics


def test_server_metadata_names_the_server(v2: Running) -> None:
    metadata = _stub(v2).ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
    assert metadata.name == "digits"
    assert metadata.version
    assert list(metadata.extensions) == []


_DATATYPES = st.sampled_from(["UINT8", "FP32", "INT32", "FP64", "BYTES", "", "uint8"])
_SHAPES = st.lists(st.integers(-2, 800), max_size=4)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    datatype=_DATATYPES,
    shape=_SHAPES,
    raw=st.one_of(st.none(), st.binary(max_size=4000)),
    typed=st.lists(st.integers(0, 300), max_size=1600),
    name=st.sampled_from(["images", "input", ""]),
    outputs=st.lists(st.sampled_from(["label", "probabilities", "logits"]), max_size=3),
)
@example(datatype="UINT8", shape=[1, 784], raw=bytes(784), typed=[], name="images", outputs=[])
@example(datatype="FP32", shape=[2, 28, 28], raw=None, typed=[1] * 1568, name="images", outputs=[])
def test_fuzzed_requests_get_ok_or_invalid_argument_never_internal(
    v2: Running, datatype, shape, raw, typed, name, outputs
) -> None:
    request = pb.ModelInferRequest(model_name="digits")
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    elif datatype == "FP32":
        tensor.contents.fp32_contents.extend(value / 300 for value in typed)
    else:
        tensor.contents.uint_contents.extend(typed)
    for output in outputs:
        request.outputs.add(name=output)
    try:
        response = _stub(v2).ModelInfer(request, timeout=5)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    else:
        assert len(response.outputs) == len(response.raw_output_contents) >= 1

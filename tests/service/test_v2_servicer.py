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
    assert set(metadata.extensions) == {"classification", "model_configuration", "statistics"}


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


def _with_parameter(request: pb.ModelInferRequest, where: str, name: str) -> None:
    """Set parameter `name` on the request, its input or a requested output."""
    if where == "request":
        request.parameters[name].bool_param = True
    elif where == "input":
        request.inputs[0].parameters[name].int64_param = 784
    else:
        request.outputs.add(name="label").parameters[name].bool_param = True


@pytest.mark.parametrize(
    ("where", "name"),
    [("output", "binary_data"), ("input", "binary_data_size"),
     ("input", "shared_memory_region"), ("request", "priority"), ("request", "made_up"),
     ("output", "made_up")],
)  # fmt: skip
def test_unsupported_parameters_are_refused_by_name(v2: Running, where: str, name: str) -> None:
    request = _infer_request(random_images(1))
    _with_parameter(request, where, name)
    with pytest.raises(grpc.RpcError) as err:
        _stub(v2).ModelInfer(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert repr(name) in err.value.details()


@pytest.mark.parametrize(
    ("value", "message"),
    [({"int64_param": 0}, "1..10, got 0"), ({"int64_param": 11}, "1..10, got 11"),
     ({"string_param": "3"}, "integer class count")],
)  # fmt: skip
def test_bad_class_counts_are_refused(v2: Running, value: dict, message: str) -> None:
    request = _infer_request(random_images(1))
    output = request.outputs.add(name="probabilities")
    output.parameters["classification"].CopyFrom(pb.InferParameter(**value))
    with pytest.raises(grpc.RpcError) as err:
        _stub(v2).ModelInfer(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()


def test_classification_as_uint64_and_top_1(v2: Running) -> None:
    images = random_images(2)
    request = _infer_request(images)
    output = request.outputs.add(name="probabilities")
    output.parameters["classification"].uint64_param = 1
    response = _stub(v2).ModelInfer(request, timeout=5)
    (tensor,) = response.outputs
    assert (tensor.datatype, list(tensor.shape)) == ("BYTES", [2, 1])
    expected = reference_proba(toy_params(1), images.reshape(2, 784) / 255.0)
    raw = response.raw_output_contents[0]
    items = []
    while raw:  # BYTES raw contents: uint32 length, then the bytes, per element
        size = int.from_bytes(raw[:4], "little")
        items.append(raw[4 : 4 + size].decode())
        raw = raw[4 + size :]
    assert [item.split(":")[1] for item in items] == [str(row.argmax()) for row in expected]
    assert all(len(item.split(":")[0].split(".")[1]) == 6 for item in items)  # "%f", Triton's
    scores = [float(item.split(":")[0]) for item in items]
    np.testing.assert_allclose(scores, expected.max(axis=1), atol=2e-6)


def test_model_config_and_statistics(v2: Running) -> None:
    stub = _stub(v2)
    config = stub.ModelConfig(pb.ModelConfigRequest(name="digits"), timeout=5).config
    assert config.max_batch_size == v2.server.core.max_images
    assert not config.HasField("dynamic_batching")  # batching is off by default
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelConfig(pb.ModelConfigRequest(name="cats"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    stub.ModelInfer(_infer_request(random_images(3)), timeout=5)
    v2.client.predict(random_images(2))  # digits.v1 requests are the model's inferences too
    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=5).model_stats
    assert [(s.name, s.version, s.inference_count, s.execution_count) for s in stats] == [
        ("digits", "1", 5, 2)
    ]
    assert stats[0].inference_stats.success.count == 2 and stats[0].last_inference > 0
    assert stats[0].inference_stats.compute_infer.count == 2
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelStatistics(pb.ModelStatisticsRequest(name="digits", version="9"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

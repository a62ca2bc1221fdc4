"""Errors can be traced: every error log line and every error status carries the caller's
request id (trailing metadata x-request-id), whether it came in the message or the metadata."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
import pytest

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from service.generated.inference import grpc_predict_v2_pb2 as v2_pb
from service.generated.inference import grpc_predict_v2_pb2_grpc as v2_grpc
from tests.helpers.servers import Running

pytestmark = pytest.mark.integration

BAD = pb.Tensor(data=b"xyz", dtype=pb.DTYPE_UINT8, shape=[1, 784])
GOOD = pb.Tensor(data=bytes(784), dtype=pb.DTYPE_UINT8, shape=[1, 784])


def _trailing_id(err: grpc.RpcError) -> str | None:
    return dict(err.trailing_metadata() or ()).get("x-request-id")  # type: ignore[attr-defined]


def _logged_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.request_id for r in caplog.records if getattr(r, "code", "OK") != "OK"]


@pytest.mark.parametrize(
    ("message_id", "metadata_id", "expected"),
    [("bad-1", None, "bad-1"), (None, "trace-7", "trace-7"), ("bad-1", "trace-7", "bad-1")],
)
def test_failed_request_is_logged_and_answered_under_the_callers_id(
    served: Running,
    caplog: pytest.LogCaptureFixture,
    message_id: str | None,
    metadata_id: str | None,
    expected: str,
) -> None:
    caplog.set_level("INFO", logger="service.rpc")
    request = pb.PredictRequest(images=BAD, request_id=message_id or "")
    metadata = (("x-request-id", metadata_id),) if metadata_id else None
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Predict(request, metadata=metadata, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailing_id(err.value) == expected
    assert _logged_ids(caplog) == [expected]


def test_without_an_id_the_error_names_the_generated_one(
    served: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="service.rpc")
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Predict(pb.PredictRequest(images=BAD), timeout=5)
    generated = _trailing_id(err.value)
    assert generated and _logged_ids(caplog) == [generated]


def test_failing_stream_message_is_traced_under_its_own_id(
    served: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="service.rpc")
    requests = [
        pb.PredictRequest(images=GOOD, request_id="ok-1"),
        pb.PredictRequest(images=BAD, request_id="bad-2"),
    ]
    answers = served.stub.PredictStream(iter(requests), timeout=5)
    assert next(answers).request_id == "ok-1"
    with pytest.raises(grpc.RpcError) as err:
        next(answers)
    assert _trailing_id(err.value) == "bad-2" and _logged_ids(caplog) == ["bad-2"]


def test_v2_error_carries_the_request_id_of_the_message(
    registry: Registry, start_server: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="service.rpc")
    running = start_server(registry, enable_v2=True)
    request = v2_pb.ModelInferRequest(model_name="digits", id="v2-bad")
    request.inputs.add(name="images", datatype="UINT8", shape=[-1, 784])
    request.raw_input_contents.append(bytes(784))
    with pytest.raises(grpc.RpcError) as err:
        v2_grpc.GRPCInferenceServiceStub(running.channel).ModelInfer(request, timeout=5)
    assert "negative dimension" in err.value.details()
    assert _trailing_id(err.value) == "v2-bad" and _logged_ids(caplog) == ["v2-bad"]


@pytest.mark.parametrize(
    "request_id",
    ["trace-7", "x" * 20_000, "bon-appétit", "two\nlines"],
    ids=["short", "20,000 characters", "not ASCII", "control character"],
)
def test_the_client_sends_any_id_and_gets_it_back(served: Running, request_id: str) -> None:
    # Before: every id also went as the x-request-id header, and 16 KiB of them failed the
    # call (RESOURCE_EXHAUSTED) or a non-ASCII one never left the client.
    from service.client import DigitsClient

    with DigitsClient(served.target, timeout=10) as client:
        answer = client.predict(np.zeros((1, 784), np.uint8), request_id=request_id)
    assert answer.request_id == request_id
    assert answer.labels.shape == (1,)

"""Property-based fuzz of PredictRequest fields: the server answers OK or a client-error code, never
INTERNAL, and keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from tests.helpers.servers import Running, start
from tests.helpers.toy_models import publish

pytestmark = pytest.mark.integration

CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    registry = Registry(tmp_path_factory.mktemp("fuzz") / "models")
    publish(registry, seed=1)
    publish(registry, seed=2, production=False)
    running = start(registry, max_images=64)
    yield running
    running.close()


shapes = st.one_of(
    st.lists(st.integers(-2, 70), min_size=0, max_size=4),
    st.tuples(st.integers(-1, 70), st.just(784)).map(list),
    st.tuples(st.integers(-1, 70), st.just(28), st.just(28)).map(list),
)
dtypes = st.sampled_from([pb.DTYPE_UNSPECIFIED, pb.DTYPE_UINT8, pb.DTYPE_FLOAT32, 3, 1000])
MUTATIONS = ("shape", "dtype", "truncate", "random data", "special float", "version", "alias",
             "top_k")  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> pb.PredictRequest:
    """A valid request (n images, uint8 or in-range float32), then zero to two random mutations."""
    n = draw(st.integers(1, 64))
    shape = draw(st.sampled_from([[n, 784], [n, 28, 28]]))
    dtype = draw(st.sampled_from([pb.DTYPE_UINT8, pb.DTYPE_FLOAT32]))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, size=(n, 784), dtype=np.uint8)
    values = pixels if dtype == pb.DTYPE_UINT8 else (pixels / 255.0).astype("<f4")
    request = pb.PredictRequest(images=pb.Tensor(data=values.tobytes(), dtype=dtype, shape=shape))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2)):
        images = request.images
        if mutation == "shape":
            del images.shape[:]
            images.shape.extend(draw(shapes))
        elif mutation == "dtype":
            images.dtype = draw(dtypes)
        elif mutation == "truncate":
            images.data = images.data[: draw(st.integers(0, max(len(images.data) - 1, 0)))]
        elif mutation == "random data":
            images.data = draw(st.binary(max_size=3000))
        elif mutation == "special float" and dtype == pb.DTYPE_FLOAT32:
            floats = values.copy()
            floats.flat[draw(st.integers(0, floats.size - 1))] = draw(st.floats(width=32))
            images.data = floats.tobytes()
        elif mutation == "version":
            request.version = draw(st.integers(-3, 4))
        elif mutation == "alias":
            request.alias = draw(st.sampled_from(["production", "latest", "nope", "", "../x", "é"]))
        elif mutation == "top_k":
            request.top_k = draw(st.integers(0, 12))
    return request


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_fuzzed_requests_never_break_the_server(
    fuzzed: Running, request: pb.PredictRequest
) -> None:
    try:
        response = fuzzed.stub.Predict(request, timeout=10)
    except grpc.RpcError as err:
        assert err.code() in CLIENT_ERRORS, (err.code(), err.details())
        event(err.code().name)
        return
    event("OK")
    n = len(response.labels)
    assert n >= 1 and response.version in (1, 2)
    probabilities = np.frombuffer(response.probabilities.data, "<f4")
    assert np.isfinite(probabilities).all() and len(probabilities) in (n * 10, n * request.top_k)


def test_server_still_serves_after_the_fuzz(fuzzed: Running) -> None:
    assert fuzzed.client.health() == "SERVING"
    assert fuzzed.client.predict(np.zeros((1, 784), np.uint8)).version == 1

"""Property-based fuzz of V2 REST inference bodies: the server answers 200 or a client-error code
with a JSON error, never 500, and keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from registry import Registry
from tests.helpers.servers import Running, free_port, start
from tests.helpers.toy_models import publish

pytestmark = pytest.mark.integration

CLIENT_ERRORS = {400, 404, 413}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, httpx.Client]]:
    registry = Registry(tmp_path_factory.mktemp("http-fuzz") / "models")
    publish(registry, seed=1)
    publish(registry, seed=2, production=False)
    running = start(registry, max_images=64, max_message_bytes=256 * 1024, http_port=free_port())
    with httpx.Client(base_url=running.http_url, timeout=10) as client:
        yield running, client
    running.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
FIELDS = ("name", "datatype", "shape", "data", "parameters")
MUTATIONS = ("drop field", "replace field", "replace shape", "replace datatype", "nested data",
             "special value", "extra input", "outputs", "request parameters", "id", "version",
             "whole body", "truncate")  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(path, body): a valid request (n images, UINT8 or FP32), then zero to two mutations."""
    n = draw(st.integers(1, 8))
    shape = draw(st.sampled_from([[n, 784], [n, 28, 28]]))
    datatype = draw(st.sampled_from(["UINT8", "FP32"]))
    pixels = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, size=n * 784)
    data: list[Any] = pixels.tolist() if datatype == "UINT8" else (pixels / 255.0).tolist()
    tensor: dict[str, Any] = {"name": "images", "datatype": datatype, "shape": shape, "data": data}
    inputs = [tensor]
    body: Any = {"inputs": inputs}
    path = "/v2/models/digits/infer"
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2)):
        if not isinstance(body, dict) or body.get("inputs") is not inputs:
            break  # "whole body" replaced it: nothing left to mutate
        if mutation == "drop field":
            tensor.pop(draw(st.sampled_from(FIELDS)), None)
        elif mutation == "replace field":
            tensor[draw(st.sampled_from(FIELDS))] = draw(json_values)
        elif mutation == "replace shape":
            tensor["shape"] = draw(st.lists(st.integers(-2, 900), max_size=4))
        elif mutation == "replace datatype":
            tensor["datatype"] = draw(st.sampled_from(["INT32", "FP64", "BYTES", "", "uint8"]))
        elif mutation == "nested data":
            tensor["data"] = np.asarray(data).reshape(shape).tolist()
        elif mutation == "special value" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(
                st.sampled_from([256, -1, 1.5, True, None, "7", 2**64, 1e39])
            )
        elif mutation == "extra input":
            inputs.append(dict(tensor, name=draw(st.sampled_from(["images", "x"]))))
        elif mutation == "outputs":
            body["outputs"] = draw(json_values | st.just([{"name": "label"}]))
        elif mutation == "request parameters":
            body["parameters"] = draw(json_values | st.just({"binary_data_output": True}))
        elif mutation == "id":
            body["id"] = draw(json_values)
        elif mutation == "version":
            path = "/v2/models/digits/versions/{}/infer".format(
                draw(st.sampled_from(["1", "2", "3", "0", "production", "latest", "nope", "%20"]))
            )
        elif mutation == "whole body":
            body = draw(json_values)
    encoded = json.dumps(body, allow_nan=True).encode()
    if "truncate" in draw(st.lists(st.sampled_from(MUTATIONS), max_size=1)):
        encoded = encoded[: draw(st.integers(0, len(encoded)))]
    return path, encoded


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=bodies())
def test_fuzzed_bodies_never_break_the_server(
    fuzzed: tuple[Running, httpx.Client], request: tuple[str, bytes]
) -> None:
    _, client = fuzzed
    path, body = request
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        assert response.status_code in CLIENT_ERRORS, (response.status_code, response.text)
        assert isinstance(response.json()["error"], str)
        event(str(response.status_code))
        return
    event("200")
    header = int(response.headers.get("inference-header-content-length", len(response.content)))
    answer = json.loads(response.content[:header])
    assert answer["model_version"] in ("1", "2")
    offset = header
    for output in answer["outputs"]:  # JSON data, or raw bytes after the header (binary_data)
        if "data" in output:
            values = np.asarray(output["data"], dtype=float)
        else:
            size = output["parameters"]["binary_data_size"]
            dtype = "<f4" if output["datatype"] == "FP32" else "<i8"
            values = np.frombuffer(response.content[offset : offset + size], dtype)
            offset += size
        assert values.size == np.prod(output["shape"]) and np.isfinite(values).all()
    assert offset == len(response.content)


def test_server_still_serves_after_the_fuzz(fuzzed: tuple[Running, httpx.Client]) -> None:
    running, client = fuzzed
    assert client.get("/v2/health/ready").status_code == 200
    assert running.client.predict(np.zeros((1, 784), np.uint8)).version == 1

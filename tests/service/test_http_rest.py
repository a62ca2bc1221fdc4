"""The HTTP edge over plain HTTP (httpx) against a real server on loopback: the V2 REST binding
answers what digits.v1 answers, bad requests get their status codes, and the server lives on."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from registry import Registry
from tests.helpers.servers import Running, free_port
from tests.helpers.toy_models import publish, random_images

pytestmark = pytest.mark.integration

INFER = "/v2/models/digits/infer"


@pytest.fixture
def rest(registry: Registry, start_server: Callable[..., Running]) -> Running:
    """A server with both edges; version 2 exists (not production) to pin."""
    publish(registry, seed=2, production=False)
    return start_server(registry, http_port=free_port())


@pytest.fixture
def http(rest: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rest.http_url, timeout=10) as client:
        yield client


def _json_request(images: np.ndarray, datatype: str = "UINT8", **extra: object) -> dict:
    tensor = {"name": "images", "datatype": datatype, "shape": list(images.shape)}
    return {"inputs": [{**tensor, "data": images.ravel().tolist()}], **extra}


def _outputs(answer: dict) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer["outputs"]}


def test_health_metadata_and_readiness(rest: Running, http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    ready = http.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    server = http.get("/v2").json()
    assert server["name"] == "digits" and server["version"]
    model = http.get("/v2/models/digits").json()
    assert model["versions"] == ["1", "2"] and model["platform"] == "numpy"
    assert model["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 784]}]
    assert [o["name"] for o in model["outputs"]] == ["probabilities", "label"]
    assert http.get("/v2/models/digits/versions/2").status_code == 200
    assert http.get("/v2/models/digits/versions/2/ready").status_code == 200
    missing = http.get("/v2/models/digits/versions/99")
    assert missing.status_code == 404 and "99" in missing.json()["error"]
    assert http.get("/v2/models/digits/versions/99/ready").status_code == 404
    assert http.get("/v2/models/cats/ready").status_code == 404


def test_errors_sent_to_clients_do_not_name_the_registry_root(
    rest: Running, http: httpx.Client
) -> None:
    root = str(rest.server.core.models.registry.location)
    answer = http.post("/v2/models/digits/versions/99/infer", json=_json_request(random_images(1)))
    error = answer.json()["error"]
    assert answer.status_code == 404 and "no version 99" in error and "versions: 1, 2" in error
    assert root not in error and "/" not in error, error


@pytest.mark.parametrize("layout", ["flat", "square", "nested", "fp32"])
def test_json_infer_equals_digits_v1(rest: Running, http: httpx.Client, layout: str) -> None:
    images = random_images(4, seed=3)
    expected = rest.client.predict(images).probabilities
    if layout == "flat":
        body = _json_request(images.reshape(4, 784))
    elif layout == "square":
        body = _json_request(images)
    elif layout == "nested":  # `data` may mirror the shape instead of being flat
        body = _json_request(images)
        body["inputs"][0]["data"] = images.tolist()
    else:
        body = _json_request((images / 255.0).astype(np.float32), "FP32")
    response = http.post(INFER, json={**body, "id": "req-7"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("digits", "1", "req-7")
    outputs = _outputs(answer)
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outputs["label"], expected.argmax(axis=1))


def test_binary_tensor_data_both_ways(rest: Running, http: httpx.Client) -> None:
    images = random_images(3, seed=5)
    header = {
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": [3, 784],
                    "parameters": {"binary_data_size": images.nbytes}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                    {"name": "label", "parameters": {"binary_data": False}}],
    }  # fmt: skip
    head = json.dumps(header).encode()
    response = http.post(
        "/v2/models/digits/versions/2/infer",
        content=head + images.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head)),
                 "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:size])
    assert answer["model_version"] == "2"
    probabilities_meta, label = answer["outputs"]
    assert probabilities_meta["parameters"] == {"binary_data_size": 3 * 10 * 4}
    probabilities = np.frombuffer(response.content[size:], "<f4").reshape(3, 10)
    expected = rest.client.predict(images, version=2).probabilities
    np.testing.assert_array_equal(probabilities, expected)  # the very float32 bytes
    assert label["data"] == expected.argmax(axis=1).tolist()


def _binary_body(images: np.ndarray, declared: int) -> tuple[bytes, dict[str, str]]:
    header = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(images.shape),
                          "parameters": {"binary_data_size": declared}}]}  # fmt: skip
    head = json.dumps(header).encode()
    return head + images.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


BAD_REQUESTS = {
    # name: (path, body or (content, headers), status, words in the error)
    "wrong datatype": (INFER, _json_request(np.zeros((1, 784), np.int32), "INT32"), 400, "INT32"),
    "uint8 above 255": (INFER, {"inputs": [{"name": "images", "datatype": "UINT8",
                                            "shape": [1, 784], "data": [256] * 784}]}, 400, "255"),
    "float out of range": (INFER, _json_request(np.full((1, 784), 2.0), "FP32"), 400, "[0, 1]"),
    "wrong shape": (INFER, _json_request(np.zeros((1, 783), np.uint8)), 400, "783"),
    "shape/data mismatch": (INFER, {"inputs": [{"name": "images", "datatype": "UINT8",
                                                "shape": [2, 784], "data": [0] * 784}]}, 400,
                            "1568"),
    "binary byte mismatch": (INFER, _binary_body(np.zeros((2, 784), np.uint8), 784), 400,
                             "binary_data_size"),
    "binary shape mismatch": (INFER, _binary_body(np.zeros((1, 784), np.uint8).reshape(2, 392),
                                                  784), 400, "392"),
    "wrong input name": (INFER, {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 784],
                                             "data": [0] * 784}]}, 400, "images"),
    "unknown output": (INFER, _json_request(np.zeros((1, 784), np.uint8),
                                            outputs=[{"name": "logits"}]), 400, "logits"),
    "unknown model": ("/v2/models/cats/infer", _json_request(np.zeros((1, 784), np.uint8)), 404,
                      "cats"),
    "unknown version": ("/v2/models/digits/versions/99/infer",
                        _json_request(np.zeros((1, 784), np.uint8)), 404, "99"),
    "malformed JSON": (INFER, (b'{"inputs": [', {"Content-Type": "application/json"}), 400,
                       "malformed JSON"),
    "not an object": (INFER, (b"[1, 2]", {}), 400, "object"),
    "compressed body": (INFER, (b"\x1f\x8b", {"Content-Encoding": "gzip"}), 415, "gzip"),
    "negative dimension": (INFER, {"inputs": [{"name": "images", "datatype": "UINT8",
                                               "shape": [-1, 784], "data": []}]}, 400,
                           "negative dimension"),
    "shape not integers": (INFER, {"inputs": [{"name": "images", "datatype": "UINT8",
                                               "shape": [1.5, 784], "data": []}]}, 400,
                           "got [1.5, 784]"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_get_their_status(rest: Running, http: httpx.Client, case: str) -> None:
    path, body, status, words = BAD_REQUESTS[case]
    if isinstance(body, tuple):
        response = http.post(path, content=body[0], headers=body[1])
    else:
        response = http.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"]
    assert http.get("/v2/health/live").status_code == 200
    assert rest.client.predict(random_images(1)).version == 1  # gRPC unharmed


def test_a_50_mb_body_is_refused_with_413_before_it_is_read(
    rest: Running, http: httpx.Client
) -> None:
    limit = rest.server.settings.max_message_bytes
    declared = http.post(INFER, content=b"[" + b"0," * (25 * 1024 * 1024) + b"0]")
    assert declared.status_code == 413 and str(limit) in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        for _ in range(50):
            yield b" " * (1024 * 1024)

    streamed = http.post(INFER, content=chunks())
    assert streamed.status_code == 413
    answer = http.post(INFER, json=_json_request(random_images(1)))
    assert answer.status_code == 200


def test_http_requests_are_counted_apart_from_grpc(rest: Running, http: httpx.Client) -> None:
    http.post(INFER, json=_json_request(random_images(2)))
    http.post(INFER, content=b"{")
    rest.client.predict(random_images(1))
    text = rest.server.core.metrics.exposition().decode()
    assert 'digits_http_requests_total{code="200",method="ModelInfer"} 1.0' in text
    assert 'digits_http_requests_total{code="400",method="ModelInfer"} 1.0' in text
    assert 'digits_requests_total{code="OK",method="Predict"} 1.0' in text
    assert 'digits_http_request_latency_seconds_count{method="ModelInfer"} 2.0' in text


def test_readiness_follows_the_model_and_hot_reload(
    tmp_path: Path, start_server: Callable[..., Running]
) -> None:
    registry = Registry(tmp_path / "models")
    running = start_server(registry, http_port=free_port())
    with httpx.Client(base_url=running.http_url, timeout=10) as http:
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 503
        assert http.get("/v2/models/digits/ready").status_code == 503
        not_ready = http.post(INFER, json=_json_request(random_images(1)))
        assert not_ready.status_code == 503 and "error" in not_ready.json()
        publish(registry, seed=1)
        _wait_for(lambda: http.get("/v2/health/ready").status_code == 200)
        assert http.post(INFER, json=_json_request(random_images(1))).json()["model_version"] == "1"
        publish(registry, seed=2)  # becomes production: the poller swaps it in
        _wait_for(
            lambda: (
                http.post(INFER, json=_json_request(random_images(1))).json()["model_version"]
                == "2"
            )
        )
        running.server.http.drain()  # what stop() does first: readiness off, still serving
        assert http.get("/v2/health/ready").status_code == 503
        assert http.post(INFER, json=_json_request(random_images(1))).status_code == 200


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_cors_is_off_by_default_and_configurable(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    closed = start_server(registry, http_port=free_port())
    answer = httpx.get(f"{closed.http_url}/v2/health/live", headers=origin)
    assert "access-control-allow-origin" not in answer.headers
    opened = start_server(
        registry, http_port=free_port(), cors_origins=["https://elsewhere.example"]
    )
    answer = httpx.get(f"{opened.http_url}/v2/health/live", headers=origin)
    assert answer.headers["access-control-allow-origin"] == "https://elsewhere.example"
    preflight = httpx.options(
        f"{opened.http_url}{INFER}",
        headers={**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert preflight.status_code == 200
    stranger = httpx.get(f"{opened.http_url}/v2/health/live", headers={"Origin": "https://x.test"})
    assert "access-control-allow-origin" not in stranger.headers


def test_the_http_port_is_off_by_default(registry: Registry, start_server: Callable) -> None:
    running = start_server(registry)
    assert running.server.http is None and running.http_url == ""


def test_a_busy_http_port_fails_at_creation(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    first = start_server(registry, http_port=free_port())
    port = int(first.http_url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
        start_server(registry, http_port=port)


def test_binary_header_length_outside_the_body(rest: Running, http: httpx.Client) -> None:
    response = http.post(INFER, content=b"{}", headers={"Inference-Header-Content-Length": "9"})
    assert response.status_code == 400 and "Inference-Header-Content-Length" in response.text
    trailing = json.dumps(_json_request(random_images(1))).encode()
    response = http.post(
        INFER,
        content=trailing + struct.pack("<I", 7),
        headers={"Inference-Header-Content-Length": str(len(trailing))},
    )
    assert response.status_code == 400 and "binary_data_size" in response.text


def test_shutdown_turns_readiness_off_then_closes_the_port(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    import threading

    running = start_server(registry, http_port=free_port(), drain_delay_s=1.0)
    with httpx.Client(base_url=running.http_url, timeout=10) as http:
        assert http.get("/v2/health/ready").status_code == 200
        # as SIGTERM stops it: a drain delay of 1 s (still serving), then a grace of 2 s
        stopping = threading.Thread(target=running.server.stop, args=(2.0, 1.0))
        stopping.start()
        _wait_for(lambda: http.get("/v2/health/ready").status_code == 503)
        # During the drain delay requests are still served (load balancers are moving away).
        assert http.post(INFER, json=_json_request(random_images(1))).status_code == 200
        stopping.join(timeout=20)
        assert not stopping.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.http_url + "/v2/health/live", timeout=2)


def _png(picture: object) -> bytes:
    from io import BytesIO

    out = BytesIO()
    picture.save(out, format="PNG")  # type: ignore[attr-defined]
    return out.getvalue()


def test_draw_answers_with_a_string_model_version(rest: Running, http: httpx.Client) -> None:
    """/v1/draw gives model_version as V2 infer does: a string."""
    from PIL import Image, ImageDraw

    seven = Image.new("L", (140, 140), 255)
    ImageDraw.Draw(seven).line((30, 30, 110, 30, 60, 120), fill=0, width=12)
    answer = http.post("/v1/draw", content=_png(seven)).json()
    v2 = http.post(INFER, json=_json_request(np.asarray([answer["input"]], np.uint8))).json()
    assert answer["model_version"] == v2["model_version"] == "1"
    assert np.asarray(answer["input"]).shape == (28, 28)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty (0 bytes), not a picture"),
        (b"hello, world", 'it starts with bytes 68 65 6c 6c 6f 2c 20 77 ("hello, w")'),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "a damaged or truncated PNG (48 bytes)"),
        ("truncated", "a damaged or truncated picture"),
    ],
)
def test_draw_errors_describe_the_bytes(
    rest: Running, http: httpx.Client, body: bytes | str, says: str
) -> None:
    """An unreadable body is a 400 naming what was sent, never a Python object's repr."""
    from PIL import Image

    if body == "truncated":
        body = _png(Image.effect_noise((64, 64), 60))[:300]
    answer = http.post("/v1/draw", content=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert says in error and "object at 0x" not in error and "<" not in error

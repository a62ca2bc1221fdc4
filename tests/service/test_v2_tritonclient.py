"""The real tritonclient against `digits serve` over the Open Inference Protocol (KServe V2).

tritonclient ships its own `inference.*` protobuf symbols and protobuf refuses a second definition
of them in one process, while other service tests load the server (and so our V2 stubs) in the
pytest process. So both sides run in child processes: the server (`python -m service`) and a
tritonclient driver (this file run as a script, which imports only tritonclient and NumPy). The
pytest process itself talks digits.v1 only, through `service.client`, to get the reference answer.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.triton_calls import attempt

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 5
TOP3 = {"probabilities": 3}  # the classification extension: 3 best classes


# --------------------------------------------------------------------------- driver (child process)
def _drive(target: str, images_file: str) -> dict[str, Any]:
    """Exercise the server with tritonclient; returns JSON-ready outcomes keyed by scenario."""
    import tritonclient.grpc as tc
    from tritonclient.grpc import service_pb2, service_pb2_grpc  # tritonclient's own stubs

    images = np.load(images_file)  # uint8 (N, 28, 28)
    floats = (images / 255.0).astype(np.float32)
    client = tc.InferenceServerClient(url=target)

    def infer(array, datatype, version="", model="digits", outputs=None, reshape=None,
              counts=None, shared_memory=False):  # fmt: skip
        counts = counts or {}  # output name -> classification class_count
        tensor = tc.InferInput("images", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        if reshape is not None:  # declare a shape that does not match the bytes sent
            tensor.set_shape(reshape)
        if shared_memory:  # data said to be in a region the server never saw
            tensor.set_shared_memory("region0", array.nbytes)
        wanted = (
            None
            if outputs is None
            else [tc.InferRequestedOutput(o, class_count=counts.get(o, 0)) for o in outputs]
        )
        result = client.infer(model, [tensor], model_version=version, outputs=wanted)
        return _result_json(result)

    def typed_infer(array, datatype, field):
        """ModelInfer with typed `contents` (not raw bytes), built with tritonclient's stubs."""
        request = service_pb2.ModelInferRequest(model_name="digits")
        tensor = request.inputs.add(name="images", datatype=datatype, shape=list(array.shape))
        getattr(tensor.contents, field).extend(array.ravel().tolist())
        stub = service_pb2_grpc.GRPCInferenceServiceStub(client._channel)
        return _result_json(tc.InferResult(stub.ModelInfer(request, timeout=10)))

    def async_infer(array, datatype):
        tensor = tc.InferInput("images", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        done: queue.Queue = queue.Queue()
        client.async_infer("digits", [tensor], callback=lambda result, error: done.put(result))
        return _result_json(done.get(timeout=10))

    flat = images.reshape(len(images), 784)
    return {
        "live": attempt(client.is_server_live),
        "ready": attempt(client.is_server_ready),
        "model_ready": attempt(lambda: client.is_model_ready("digits")),
        "model_ready_v2": attempt(lambda: client.is_model_ready("digits", "2")),
        "model_ready_v99": attempt(lambda: client.is_model_ready("digits", "99")),
        "model_ready_unknown": attempt(lambda: client.is_model_ready("cats")),
        "server_metadata": attempt(lambda: client.get_server_metadata(as_json=True)),
        "model_metadata": attempt(lambda: client.get_model_metadata("digits", as_json=True)),
        "model_metadata_unknown": attempt(lambda: client.get_model_metadata("cats")),
        "raw_uint8_flat": attempt(lambda: infer(flat, "UINT8")),
        "raw_uint8_square": attempt(lambda: infer(images, "UINT8")),
        "raw_fp32": attempt(lambda: infer(floats, "FP32")),
        "typed_uint8": attempt(lambda: typed_infer(images, "UINT8", "uint_contents")),
        "typed_fp32": attempt(lambda: typed_infer(floats, "FP32", "fp32_contents")),
        "async_uint8": attempt(lambda: async_infer(flat, "UINT8")),
        "pinned_v2": attempt(lambda: infer(flat, "UINT8", version="2")),
        "label_only": attempt(lambda: infer(flat, "UINT8", outputs=["label"])),
        "unknown_model": attempt(lambda: infer(flat, "UINT8", model="cats")),
        "unknown_version": attempt(lambda: infer(flat, "UINT8", version="99")),
        "wrong_datatype": attempt(lambda: infer(flat.astype(np.int32), "INT32")),
        "wrong_shape": attempt(lambda: infer(flat[:, :783], "UINT8")),
        "byte_length": attempt(lambda: infer(flat, "UINT8", reshape=[N_IMAGES + 1, 784])),
        "unknown_output": attempt(lambda: infer(flat, "UINT8", outputs=["logits"])),
        "model_config": attempt(lambda: client.get_model_config("digits", as_json=True)),
        "classification": attempt(
            lambda: infer(flat, "UINT8", outputs=["probabilities", "label"], counts=TOP3)
        ),
        "classification_of_label": attempt(
            lambda: infer(flat, "UINT8", outputs=["label"], counts={"label": 3})
        ),
        "shared_memory": attempt(lambda: infer(flat, "UINT8", shared_memory=True)),
        "statistics": attempt(lambda: client.get_inference_statistics("digits", "2", as_json=True)),
        "live_after_errors": attempt(client.is_server_live),
    }


def _result_json(result: Any) -> dict[str, Any]:
    response = result.get_response()
    outputs = {}
    for output in response.outputs:
        array = result.as_numpy(output.name)
        data = array.astype(str) if output.datatype == "BYTES" else array  # bytes -> str
        outputs[output.name] = {
            "datatype": output.datatype,
            "dtype": str(array.dtype),
            "data": data.tolist(),
        }
    return {"model_version": response.model_version, "outputs": outputs}


# --------------------------------------------------------------------------- fixtures (pytest)
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _publish_two_versions(root: Path) -> None:
    """Version 1 is production, version 2 is newer: the default and a pinned version differ."""
    from registry import Registry
    from tests.helpers.toy_models import publish

    registry = Registry(root)
    publish(registry, seed=1)
    publish(registry, seed=2, production=False)


def _server_env(registry: Path, port: int) -> dict[str, str]:
    """Environment of `python -m service` (the container's command): settings via DIGITS_*."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DIGITS_REGISTRY": str(registry),
        "DIGITS_PORT": str(port),
        "DIGITS_METRICS_PORT": "-1",
        "DIGITS_LOG_FORMAT": "text",
        "DIGITS_ENABLE_V2": "true",
    }


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`digits serve` in a child process on a free loopback port; yields its target."""
    from service.client import DigitsClient

    root = tmp_path_factory.mktemp("registry")
    _publish_two_versions(root)
    port = _free_port()
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env=_server_env(root, port),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    target = f"127.0.0.1:{port}"
    try:
        with DigitsClient(target, timeout=1.0) as client:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    if client.health() == "SERVING":
                        break
                except Exception:  # not listening yet
                    time.sleep(0.1)
            else:
                pytest.fail(f"server did not become SERVING: {(root / 'server.log').read_text()}")
        yield target
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def triton(v2_server: str, images: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Outcomes of every tritonclient scenario, run once in a child process."""
    images_file = tmp_path_factory.mktemp("images") / "images.npy"
    np.save(images_file, images)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    module = "tests.service.test_v2_tritonclient"  # this file, as the driver script
    driver = [sys.executable, "-m", module, v2_server, str(images_file)]
    done = subprocess.run(driver, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def reference(v2_server: str, images: np.ndarray) -> dict[int, np.ndarray]:
    """digits.v1 probabilities for the same images from versions 1 and 2."""
    from service.client import DigitsClient

    with DigitsClient(v2_server) as client:
        return {v: client.predict(images, version=v).probabilities for v in (1, 2)}


# --------------------------------------------------------------------------- tests
def _probabilities(outcome: dict) -> np.ndarray:
    return np.asarray(outcome["value"]["outputs"]["probabilities"]["data"], dtype=np.float32)


def test_readiness(triton: dict) -> None:
    assert triton["live"] == {"value": True}
    assert triton["ready"] == {"value": True}
    assert triton["model_ready"] == {"value": True}
    assert triton["model_ready_v2"] == {"value": True}
    assert triton["model_ready_v99"] == {"value": False}
    assert triton["model_ready_unknown"] == {"value": False}


def test_server_metadata(triton: dict) -> None:
    metadata = triton["server_metadata"]["value"]
    assert metadata["name"] == "digits"
    assert metadata["version"]
    assert "classification" in metadata["extensions"]


def test_model_metadata_describes_tensors_with_a_variable_batch(triton: dict) -> None:
    metadata = triton["model_metadata"]["value"]
    assert metadata["name"] == "digits"
    assert metadata["versions"] == ["1", "2"]
    # MessageToJson writes int64 as strings.
    assert metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": ["-1", "784"]}]
    assert metadata["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]},
        {"name": "label", "datatype": "INT64", "shape": ["-1"]},
    ]
    assert triton["model_metadata_unknown"]["status"] == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize(
    "scenario",
    ["raw_uint8_flat", "raw_uint8_square", "raw_fp32", "typed_uint8", "typed_fp32", "async_uint8"],
)
def test_infer_equals_the_digits_v1_answer(triton: dict, reference: dict, scenario: str) -> None:
    outcome = triton[scenario]
    assert "value" in outcome, outcome
    result = outcome["value"]
    assert result["model_version"] == "1"
    probabilities = result["outputs"]["probabilities"]
    label = result["outputs"]["label"]
    assert (probabilities["datatype"], probabilities["dtype"]) == ("FP32", "float32")
    assert (label["datatype"], label["dtype"]) == ("INT64", "int64")
    np.testing.assert_allclose(_probabilities(outcome), reference[1], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(label["data"], reference[1].argmax(axis=1))


def test_pinned_version_is_served_by_that_version(triton: dict, reference: dict) -> None:
    outcome = triton["pinned_v2"]
    assert outcome["value"]["model_version"] == "2"
    np.testing.assert_allclose(_probabilities(outcome), reference[2], rtol=0, atol=1e-6)
    assert not np.allclose(reference[1], reference[2])


def test_requested_outputs_are_honoured(triton: dict, reference: dict) -> None:
    outputs = triton["label_only"]["value"]["outputs"]
    assert list(outputs) == ["label"]
    np.testing.assert_array_equal(outputs["label"]["data"], reference[1].argmax(axis=1))


@pytest.mark.parametrize(
    ("scenario", "status", "mentions"),
    [
        ("unknown_model", "NOT_FOUND", "cats"),
        ("unknown_version", "NOT_FOUND", "99"),
        ("wrong_datatype", "INVALID_ARGUMENT", "INT32"),
        ("wrong_shape", "INVALID_ARGUMENT", "783"),
        ("byte_length", "INVALID_ARGUMENT", "bytes"),
        ("unknown_output", "INVALID_ARGUMENT", "logits"),
        ("classification_of_label", "INVALID_ARGUMENT", "only available for output"),
        ("shared_memory", "INVALID_ARGUMENT", "shared_memory_region"),
    ],
)
def test_bad_requests_surface_their_status(triton: dict, scenario, status, mentions) -> None:
    outcome = triton[scenario]
    assert outcome.get("status") == f"StatusCode.{status}", outcome
    assert mentions in outcome["message"]


def test_classification_extension_returns_top_k_score_index_strings(
    triton: dict, reference: dict
) -> None:
    outputs = triton["classification"]["value"]["outputs"]
    probabilities = outputs["probabilities"]
    assert probabilities["datatype"] == "BYTES"
    rows = probabilities["data"]
    assert np.shape(rows) == (N_IMAGES, 3)
    for row, expected in zip(rows, reference[1], strict=True):
        scores = [float(item.split(":")[0]) for item in row]
        classes = [int(item.split(":")[1]) for item in row]
        assert classes == list(np.argsort(-expected, kind="stable")[:3])
        np.testing.assert_allclose(scores, expected[classes], atol=1e-6)
    np.testing.assert_array_equal(outputs["label"]["data"], reference[1].argmax(axis=1))


def test_model_config_is_what_triton_tools_read(triton: dict) -> None:
    config = triton["model_config"]["value"]["config"]
    assert config["name"] == "digits" and config["max_batch_size"] > 0
    assert config["input"] == [{"name": "images", "data_type": "TYPE_UINT8", "dims": ["784"]}]
    assert [(o["name"], o["data_type"]) for o in config["output"]] == [
        ("probabilities", "TYPE_FP32"),
        ("label", "TYPE_INT64"),
    ]


def test_statistics_count_the_inferences(triton: dict) -> None:
    # Version 2 answered exactly one request of N_IMAGES rows in the driver ("pinned_v2").
    (stats,) = triton["statistics"]["value"]["model_stats"]
    assert (stats["name"], stats["version"]) == ("digits", "2")
    assert stats["inference_count"] == str(N_IMAGES)  # MessageToJson: uint64 as strings
    assert stats["execution_count"] == "1"
    assert stats["inference_stats"]["success"]["count"] == "1"


def test_server_still_live_after_bad_requests(triton: dict) -> None:
    assert triton["live_after_errors"] == {"value": True}


if __name__ == "__main__":
    # Entry point of the `triton` fixture: python -m tests.service.test_v2_tritonclient
    print(json.dumps(_drive(sys.argv[1], sys.argv[2])))

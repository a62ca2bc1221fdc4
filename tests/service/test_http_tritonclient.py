"""The real tritonclient.http against the HTTP edge (KServe V2 REST), JSON and binary tensor data.

tritonclient's packages clash with our V2 stubs in one process (test_v2_tritonclient.py says
why), so the tritonclient side runs in a child process: this file run as a script, importing only
tritonclient and NumPy. The server runs in the pytest process, on loopback, with both edges; the
reference answer comes from digits.v1 over gRPC on the same server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.triton_calls import attempt

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 5


# --------------------------------------------------------------------------- driver (child process)
def _drive(url: str, images_file: str) -> dict[str, Any]:
    """Exercise the server with tritonclient.http; JSON-ready outcomes keyed by scenario."""
    import tritonclient.http as th

    images = np.load(images_file)  # uint8 (N, 28, 28)
    floats = (images / 255.0).astype(np.float32)
    flat = images.reshape(len(images), 784)
    client = th.InferenceServerClient(url=url)

    def infer(array, datatype, *, binary=True, version="", model="digits", outputs=None,
              reshape=None):  # fmt: skip
        tensor = th.InferInput("images", list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        if reshape is not None:  # declare a shape that does not match the data sent
            tensor.set_shape(reshape)
        wanted = None
        if outputs is not None:
            wanted = [th.InferRequestedOutput(name, binary_data=binary) for name in outputs]
        result = client.infer(model, [tensor], model_version=version, outputs=wanted)
        return _result_json(result)

    both = ["probabilities", "label"]
    return {
        "live": attempt(client.is_server_live),
        "ready": attempt(client.is_server_ready),
        "model_ready": attempt(lambda: client.is_model_ready("digits")),
        "model_ready_v2": attempt(lambda: client.is_model_ready("digits", "2")),
        "model_ready_v99": attempt(lambda: client.is_model_ready("digits", "99")),
        "model_ready_unknown": attempt(lambda: client.is_model_ready("cats")),
        "server_metadata": attempt(client.get_server_metadata),
        "model_metadata": attempt(lambda: client.get_model_metadata("digits")),
        "model_metadata_unknown": attempt(lambda: client.get_model_metadata("cats")),
        "binary_uint8": attempt(lambda: infer(flat, "UINT8")),
        "binary_uint8_square": attempt(lambda: infer(images, "UINT8", outputs=both)),
        "binary_fp32": attempt(lambda: infer(floats, "FP32")),
        "json_uint8": attempt(lambda: infer(flat, "UINT8", binary=False, outputs=both)),
        "json_fp32": attempt(lambda: infer(floats, "FP32", binary=False, outputs=both)),
        "async_binary": attempt(
            lambda: _result_json(
                client.async_infer("digits", [_input(th, flat)]).get_result(timeout=10)
            )
        ),
        "pinned_v2": attempt(lambda: infer(flat, "UINT8", version="2")),
        "label_only": attempt(lambda: infer(flat, "UINT8", outputs=["label"])),
        "unknown_model": attempt(lambda: infer(flat, "UINT8", model="cats")),
        "unknown_version": attempt(lambda: infer(flat, "UINT8", version="99")),
        "wrong_datatype": attempt(lambda: infer(flat.astype(np.int32), "INT32")),
        "wrong_datatype_json": attempt(lambda: infer(flat.astype(np.int32), "INT32", binary=False)),
        "wrong_shape": attempt(lambda: infer(flat[:, :783], "UINT8")),
        "byte_length": attempt(lambda: infer(flat, "UINT8", reshape=[N_IMAGES + 1, 784])),
        "value_count": attempt(
            lambda: infer(flat, "UINT8", binary=False, reshape=[N_IMAGES + 1, 784])
        ),
        "unknown_output": attempt(lambda: infer(flat, "UINT8", outputs=["logits"])),
        "live_after_errors": attempt(client.is_server_live),
    }


def _input(th: Any, array: np.ndarray) -> Any:
    tensor = th.InferInput("images", list(array.shape), "UINT8")
    tensor.set_data_from_numpy(array)
    return tensor


def _result_json(result: Any) -> dict[str, Any]:
    response = result.get_response()
    outputs = {}
    for output in response["outputs"]:
        array = result.as_numpy(output["name"])
        outputs[output["name"]] = {
            "datatype": output["datatype"],
            "binary": "binary_data_size" in output.get("parameters", {}),
            "dtype": str(array.dtype),
            "data": array.tolist(),
        }
    return {"model_version": response["model_version"], "outputs": outputs}


# --------------------------------------------------------------------------- fixtures (pytest)
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Both edges over a registry where version 1 is production and version 2 is newer."""
    from registry import Registry
    from tests.helpers.servers import free_port, start
    from tests.helpers.toy_models import publish

    registry = Registry(tmp_path_factory.mktemp("http-triton") / "models")
    publish(registry, seed=1)
    publish(registry, seed=2, production=False)
    running = start(registry, http_port=free_port())
    yield running
    running.close()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(11).integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def triton(server: Any, images: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Outcomes of every tritonclient.http scenario, run once in a child process."""
    images_file = tmp_path_factory.mktemp("images") / "images.npy"
    np.save(images_file, images)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    url = server.http_url.removeprefix("http://")
    driver = [sys.executable, "-m", "tests.service.test_http_tritonclient", url, str(images_file)]
    done = subprocess.run(driver, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def reference(server: Any, images: np.ndarray) -> dict[int, np.ndarray]:
    """digits.v1 (gRPC) probabilities for the same images from versions 1 and 2."""
    return {v: server.client.predict(images, version=v).probabilities for v in (1, 2)}


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


def test_metadata(triton: dict) -> None:
    assert triton["server_metadata"]["value"]["name"] == "digits"
    metadata = triton["model_metadata"]["value"]
    assert metadata["versions"] == ["1", "2"]
    assert metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 784]}]
    assert triton["model_metadata_unknown"]["status"] == "404"


@pytest.mark.parametrize(
    ("scenario", "binary"),
    [("binary_uint8", True), ("binary_uint8_square", True), ("binary_fp32", True),
     ("json_uint8", False), ("json_fp32", False), ("async_binary", True)],
)  # fmt: skip
def test_infer_equals_the_digits_v1_answer(
    triton: dict, reference: dict, scenario: str, binary: bool
) -> None:
    outcome = triton[scenario]
    assert "value" in outcome, outcome
    result = outcome["value"]
    assert result["model_version"] == "1"
    probabilities, label = result["outputs"]["probabilities"], result["outputs"]["label"]
    assert (probabilities["datatype"], probabilities["dtype"]) == ("FP32", "float32")
    assert (label["datatype"], label["dtype"]) == ("INT64", "int64")
    assert probabilities["binary"] is binary and label["binary"] is binary
    np.testing.assert_allclose(_probabilities(outcome), reference[1], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(label["data"], reference[1].argmax(axis=1))


def test_pinned_version_and_requested_outputs(triton: dict, reference: dict) -> None:
    assert triton["pinned_v2"]["value"]["model_version"] == "2"
    np.testing.assert_allclose(_probabilities(triton["pinned_v2"]), reference[2], atol=1e-6)
    outputs = triton["label_only"]["value"]["outputs"]
    assert list(outputs) == ["label"]
    np.testing.assert_array_equal(outputs["label"]["data"], reference[1].argmax(axis=1))


@pytest.mark.parametrize(
    ("scenario", "status", "mentions"),
    [
        ("unknown_model", "404", "cats"),
        ("unknown_version", "404", "99"),
        ("wrong_datatype", "400", "INT32"),
        ("wrong_datatype_json", "400", "INT32"),
        ("wrong_shape", "400", "783"),
        ("byte_length", "400", "bytes"),
        ("value_count", "400", "values"),
        ("unknown_output", "400", "logits"),
    ],
)
def test_bad_requests_surface_their_status(triton: dict, scenario, status, mentions) -> None:
    outcome = triton[scenario]
    assert outcome.get("status") == status, outcome
    assert mentions in outcome["message"]


def test_server_still_live_after_bad_requests(triton: dict) -> None:
    assert triton["live_after_errors"] == {"value": True}


if __name__ == "__main__":
    # Entry point of the `triton` fixture: python -m tests.service.test_http_tritonclient
    print(json.dumps(_drive(sys.argv[1], sys.argv[2])))

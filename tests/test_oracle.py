"""Every forward pass against the one float64 oracle (tests/helpers/oracle.py), with its tolerance.

The same images go through core.MLP (float64 and float32), the server's Predictor (uint8 and
float32) and every wire path of a real server (digits.v1 Predict and PredictStream, V2
ModelInfer with raw and typed contents); each must match the oracle within the stated bound.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core import MLP
from registry import Registry
from service.generated.inference import grpc_predict_v2_pb2 as v2_pb
from service.generated.inference import grpc_predict_v2_pb2_grpc as v2_grpc
from service.serving.model import Predictor
from tests.helpers.oracle import FLOAT32_ATOL, FLOAT64_ATOL, reference_proba
from tests.helpers.servers import Running
from tests.helpers.toy_models import random_images, toy_params

IMAGES = random_images(6, seed=11)  # (6, 28, 28) uint8
FLOATS = IMAGES.reshape(6, 784).astype(np.float32) / np.float32(255.0)
PARAMS = toy_params(1)  # version 1 of the `registry` fixture
EXPECTED = reference_proba(PARAMS, IMAGES)


def test_oracle_is_a_distribution_and_not_constant() -> None:
    np.testing.assert_allclose(EXPECTED.sum(axis=1), 1.0, atol=1e-12)
    assert len(set(EXPECTED.argmax(axis=1))) > 1  # the toy model does discriminate


def test_mlp_float64_matches_the_oracle() -> None:
    params64 = {key: value.astype(np.float64) for key, value in PARAMS.items()}
    model = MLP.from_params(params64, dtype=np.float64)
    got = model.predict_proba(IMAGES.reshape(6, 784).astype(np.float64) / 255.0)
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=FLOAT64_ATOL)


def test_mlp_float32_matches_the_oracle() -> None:
    got = MLP.from_params(PARAMS).predict_proba(FLOATS)
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=FLOAT32_ATOL)


@pytest.mark.parametrize("pixels", [IMAGES.reshape(6, 784), FLOATS], ids=["uint8", "float32"])
def test_predictor_matches_the_oracle(pixels: np.ndarray) -> None:
    got = Predictor(PARAMS).predict_proba(pixels)
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=FLOAT32_ATOL)


@pytest.mark.integration
@pytest.mark.parametrize("pixels", [IMAGES, FLOATS], ids=["uint8", "float32"])
def test_digits_v1_predict_and_stream_match_the_oracle(served: Running, pixels: np.ndarray) -> None:
    unary = served.client.predict(pixels)
    np.testing.assert_allclose(unary.probabilities, EXPECTED, rtol=0, atol=FLOAT32_ATOL)
    streamed = list(served.client.predict_stream([pixels[:2], pixels[2:]]))
    got = np.concatenate([result.probabilities for result in streamed])
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=FLOAT32_ATOL)


def _v2_request(pixels: np.ndarray, typed: bool) -> v2_pb.ModelInferRequest:
    request = v2_pb.ModelInferRequest(model_name="digits")
    datatype = "UINT8" if pixels.dtype == np.uint8 else "FP32"
    tensor = request.inputs.add(name="images", datatype=datatype, shape=[len(pixels), 784])
    flat = pixels.reshape(len(pixels), 784)
    if not typed:
        request.raw_input_contents.append(np.ascontiguousarray(flat).tobytes())
    elif datatype == "UINT8":
        tensor.contents.uint_contents.extend(int(v) for v in flat.ravel())
    else:
        tensor.contents.fp32_contents.extend(float(v) for v in flat.ravel())
    return request


@pytest.mark.integration
@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
@pytest.mark.parametrize("pixels", [IMAGES, FLOATS], ids=["uint8", "float32"])
def test_v2_model_infer_matches_the_oracle(
    registry: Registry, start_server: Callable[..., Running], pixels: np.ndarray, typed: bool
) -> None:
    running = start_server(registry, enable_v2=True)
    stub = v2_grpc.GRPCInferenceServiceStub(running.channel)
    response = stub.ModelInfer(_v2_request(pixels, typed), timeout=10)
    index = [output.name for output in response.outputs].index("probabilities")
    got = np.frombuffer(response.raw_output_contents[index], "<f4").reshape(-1, 10)
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=FLOAT32_ATOL)

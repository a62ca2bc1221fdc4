"""Unit tests of the Open Inference Protocol converters (no server, no tritonclient)."""

from __future__ import annotations

import numpy as np
import pytest

from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.rpc.v2_converters import (
    requested_outputs,
    tensor_metadata,
    to_images,
    to_infer_response,
)
from service.serving.errors import InvalidInput

MAX_ROWS = 64


def _raw_request(array: np.ndarray, datatype: str, shape: list[int] | None = None):
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name="images", datatype=datatype, shape=shape or list(array.shape))
    request.raw_input_contents.append(array.tobytes())
    return request


def _typed_request(array: np.ndarray, datatype: str, field: str):
    request = pb.ModelInferRequest(model_name="digits")
    tensor = request.inputs.add(name="images", datatype=datatype, shape=list(array.shape))
    getattr(tensor.contents, field).extend(array.ravel().tolist())
    return request


@pytest.mark.parametrize("shape", [(3, 784), (3, 28, 28), (1, 784)])
@pytest.mark.parametrize(("datatype", "dtype"), [("UINT8", np.uint8), ("FP32", np.float32)])
def test_raw_contents_round_trip_to_rows_of_784(shape, datatype, dtype) -> None:
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    images = to_images(_raw_request(array, datatype), max_rows=MAX_ROWS)
    assert images.dtype == dtype
    np.testing.assert_array_equal(images, array.reshape(shape[0], 784))


@pytest.mark.parametrize(
    ("datatype", "dtype", "field"),
    [("UINT8", np.uint8, "uint_contents"), ("FP32", np.float32, "fp32_contents")],
)
def test_typed_contents_match_raw_contents(datatype, dtype, field) -> None:
    rng = np.random.default_rng(1)
    array = (rng.random((2, 28, 28)) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    typed = to_images(_typed_request(array, datatype, field), max_rows=MAX_ROWS)
    raw = to_images(_raw_request(array, datatype), max_rows=MAX_ROWS)
    assert typed.dtype == dtype
    np.testing.assert_array_equal(typed, raw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: setattr(r.inputs[0], "datatype", "FP64"), "datatype must be UINT8 or FP32"),
        (lambda r: r.inputs[0].ClearField("shape") or r.inputs[0].shape.extend([2, 783]), "shape"),
        (lambda r: r.inputs[0].ClearField("shape") or r.inputs[0].shape.extend([0, 784]), "empty"),
        (lambda r: r.inputs[0].ClearField("shape") or r.inputs[0].shape.extend([784]), "shape"),
        (lambda r: setattr(r.inputs[0], "name", "pixels"), "named 'images'"),
        (lambda r: r.raw_input_contents.append(b"x"), "one entry per input"),
        (lambda r: r.inputs[0].contents.uint_contents.append(1), "both raw and typed"),
        (lambda r: r.inputs.add(name="images2", datatype="UINT8", shape=[1, 784]), "exactly one"),
    ],
)
def test_malformed_raw_requests_name_the_problem(mutate, message) -> None:
    request = _raw_request(np.zeros((2, 784), np.uint8), "UINT8")
    mutate(request)
    with pytest.raises(InvalidInput, match=message):
        to_images(request, max_rows=MAX_ROWS)


def test_raw_byte_length_mismatch_is_rejected() -> None:
    request = _raw_request(np.zeros((2, 784), np.float32), "FP32")
    request.raw_input_contents[0] = request.raw_input_contents[0][:-1]
    with pytest.raises(InvalidInput, match="has 6271 bytes, expected 6272"):
        to_images(request, max_rows=MAX_ROWS)


def test_uint8_data_declared_fp32_is_a_length_mismatch() -> None:
    request = _raw_request(np.zeros((1, 784), np.uint8), "FP32")
    with pytest.raises(InvalidInput, match="has 784 bytes, expected 3136"):
        to_images(request, max_rows=MAX_ROWS)


def test_typed_contents_in_the_wrong_field_or_count_are_rejected() -> None:
    wrong_field = _typed_request(np.zeros((1, 784), np.float32), "UINT8", "fp32_contents")
    with pytest.raises(InvalidInput, match="goes in uint_contents, but fp32_contents was set"):
        to_images(wrong_field, max_rows=MAX_ROWS)
    short = _typed_request(np.zeros((1, 783), np.float32), "FP32", "fp32_contents")
    short.inputs[0].shape[:] = [1, 784]
    with pytest.raises(InvalidInput, match="needs 784 values in fp32_contents, got 783"):
        to_images(short, max_rows=MAX_ROWS)
    too_big = _typed_request(np.full((1, 784), 256, np.uint32), "UINT8", "uint_contents")
    with pytest.raises(InvalidInput, match="above 255"):
        to_images(too_big, max_rows=MAX_ROWS)


def test_digits_v1_limits_apply_to_raw_and_typed_contents() -> None:
    over_limit = _raw_request(np.zeros((MAX_ROWS + 1, 784), np.uint8), "UINT8")
    with pytest.raises(InvalidInput, match="over the limit of 64"):
        to_images(over_limit, max_rows=MAX_ROWS)
    pixels = np.zeros((1, 784), np.float32)
    pixels[0, 5] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        to_images(_typed_request(pixels, "FP32", "fp32_contents"), max_rows=MAX_ROWS)
    pixels[0, 5] = 1.5
    with pytest.raises(InvalidInput, match=r"in \[0, 1\]"):
        to_images(_raw_request(pixels, "FP32"), max_rows=MAX_ROWS)


@pytest.mark.parametrize("shape", [[-1, 784], [-1, -784], [1, -784]])
def test_a_negative_shape_is_named_as_such(shape: list[int]) -> None:
    # Not "empty batch" nor "needs 784 values, got 784": the negative dimension is the problem.
    typed = _typed_request(np.zeros((1, 784), np.uint8), "UINT8", "uint_contents")
    raw = _raw_request(np.zeros((1, 784), np.uint8), "UINT8")
    for request in (typed, raw):
        request.inputs[0].shape[:] = shape
        with pytest.raises(InvalidInput, match="has a negative dimension") as err:
            to_images(request, max_rows=MAX_ROWS)
        assert "empty" not in str(err.value) and "values" not in str(err.value)


def test_requested_outputs_default_order_and_validation() -> None:
    request = pb.ModelInferRequest()
    assert requested_outputs(request) == ["probabilities", "label"]
    request.outputs.add(name="label")
    assert requested_outputs(request) == ["label"]
    request.outputs.add(name="logits")
    with pytest.raises(InvalidInput, match="unknown output 'logits'"):
        requested_outputs(request)
    duplicated = pb.ModelInferRequest()
    duplicated.outputs.add(name="label")
    duplicated.outputs.add(name="label")
    with pytest.raises(InvalidInput, match="more than once"):
        requested_outputs(duplicated)


def test_response_carries_raw_little_endian_outputs_in_requested_order() -> None:
    probabilities = np.array([[0.1] * 10, [0.0] * 9 + [1.0]], dtype=np.float32)
    probabilities[0, 3] = 0.5
    labels = probabilities.argmax(axis=1)
    response = to_infer_response(
        probabilities,
        labels,
        ["label", "probabilities"],
        model_name="digits",
        model_version="4",
        request_id="r1",
    )
    assert (response.model_name, response.model_version, response.id) == ("digits", "4", "r1")
    label, probs = response.outputs
    assert (label.name, label.datatype, list(label.shape)) == ("label", "INT64", [2])
    assert (probs.name, probs.datatype, list(probs.shape)) == ("probabilities", "FP32", [2, 10])
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], "<i8"), [3, 9])
    np.testing.assert_array_equal(
        np.frombuffer(response.raw_output_contents[1], "<f4").reshape(2, 10), probabilities
    )
    assert not label.HasField("contents")


def test_metadata_uses_minus_one_for_the_batch_dimension() -> None:
    inputs, outputs = tensor_metadata()
    assert [(t.name, t.datatype, list(t.shape)) for t in inputs] == [("images", "UINT8", [-1, 784])]
    assert [(t.name, t.datatype, list(t.shape)) for t in outputs] == [
        ("probabilities", "FP32", [-1, 10]),
        ("label", "INT64", [-1]),
    ]

"""Open Inference Protocol (KServe V2) tensors <-> NumPy arrays for the digits model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.rpc.v2_parameters import classification_bytes
from service.serving.errors import InvalidInput
from service.serving.v2_model import (
    INPUT_NAME,
    LABEL_OUTPUT,
    OUTPUT_NAMES,
    PROBABILITIES_OUTPUT,
    TENSOR_METADATA,
    check_input,
    check_outputs,
)
from service.serving.validation import check_pixels, check_shape, pixels_from_bytes

__all__ = [
    "INPUT_NAME",
    "LABEL_OUTPUT",
    "OUTPUT_NAMES",
    "PROBABILITIES_OUTPUT",
    "requested_outputs",
    "tensor_metadata",
    "to_images",
    "to_infer_response",
]

# V2 datatype -> the typed `contents` field that carries it.
_TYPED_FIELD = {"UINT8": "uint_contents", "FP32": "fp32_contents"}
_TYPED_FIELDS = (
    "bool_contents",
    "int_contents",
    "int64_contents",
    "uint_contents",
    "uint64_contents",
    "fp32_contents",
    "fp64_contents",
    "bytes_contents",
)


def _typed_values(tensor: pb.ModelInferRequest.InferInputTensor, field: str) -> NDArray[Any]:
    """Read the typed contents of `tensor`, insisting on the one field its datatype uses."""
    contents = tensor.contents
    others = [name for name in _TYPED_FIELDS if name != field and len(getattr(contents, name))]
    if others:
        raise InvalidInput(
            f"input '{INPUT_NAME}' has datatype {tensor.datatype}, whose typed data goes in "
            f"{field}, but {others[0]} was set"
        )
    if field == "uint_contents":
        values = np.asarray(contents.uint_contents, dtype=np.uint32)
        if values.size and int(values.max()) > 255:
            raise InvalidInput(f"UINT8 input '{INPUT_NAME}' has a value above 255")
        return values.astype(np.uint8)
    return np.asarray(contents.fp32_contents, dtype=np.float32)


def to_images(request: pb.ModelInferRequest, *, max_rows: int) -> NDArray[Any]:
    """Decode the request's `images` tensor into checked (N, 784) uint8 or float32 pixels.

    The data may come from raw_input_contents (row-major little-endian bytes) or from the typed
    contents field of the datatype (uint_contents for UINT8, fp32_contents for FP32), never both.
    Shape, size, batch limit and value checks are digits.v1's (service.serving.validation); every
    problem raises InvalidInput naming it.
    """
    names = [tensor.name for tensor in request.inputs]
    dtype = check_input(names, request.inputs[0].datatype if names else "")
    tensor = request.inputs[0]
    field = _TYPED_FIELD[tensor.datatype]
    shape = [int(d) for d in tensor.shape]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise InvalidInput(
                f"raw_input_contents must hold one entry per input (1), "
                f"got {len(request.raw_input_contents)}"
            )
        if tensor.HasField("contents"):
            raise InvalidInput(f"input '{INPUT_NAME}' has both raw and typed contents")
        return pixels_from_bytes(request.raw_input_contents[0], dtype, shape, max_rows=max_rows)
    values = _typed_values(tensor, field)
    check_shape(shape, max_rows)  # names a bad shape before the value count is compared
    if values.size != math.prod(shape):
        raise InvalidInput(
            f"input '{INPUT_NAME}' of shape {shape} needs {math.prod(shape)} values "
            f"in {field}, got {values.size}"
        )
    return check_pixels(values.reshape(shape), max_rows=max_rows)


def requested_outputs(request: pb.ModelInferRequest) -> list[str]:
    """The output names to return, in request order; all outputs when none is requested."""
    return check_outputs([output.name for output in request.outputs])


def to_infer_response(
    probabilities: NDArray[np.float32],
    labels: NDArray[np.int64],
    outputs: Sequence[str],
    *,
    model_name: str,
    model_version: str,
    request_id: str = "",
    class_counts: Mapping[str, int] | None = None,
) -> pb.ModelInferResponse:
    """Build the response with `outputs` as raw little-endian tensors (what tritonclient reads).

    `probabilities` is (N, 10) and becomes FP32 [N, 10], or with class_counts {"probabilities":
    k} the classification extension's BYTES [N, k] "score:index" strings; `labels` (N,) becomes
    INT64 [N].
    """
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id
    )
    for name in outputs:
        k = (class_counts or {}).get(name)
        if k is not None:
            response.outputs.add(name=name, datatype="BYTES", shape=[len(probabilities), k])
            response.raw_output_contents.append(classification_bytes(probabilities, k))
            continue
        if name == PROBABILITIES_OUTPUT:
            data = np.ascontiguousarray(probabilities, dtype="<f4")
            datatype = "FP32"
        else:
            data = np.ascontiguousarray(labels, dtype="<i8")
            datatype = "INT64"
        response.outputs.add(name=name, datatype=datatype, shape=data.shape)
        response.raw_output_contents.append(data.tobytes())
    return response


def tensor_metadata() -> tuple[list[pb.ModelMetadataResponse.TensorMetadata], ...]:
    """(inputs, outputs) metadata of the digits model (service.serving.v2_model.TENSOR_METADATA)."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    inputs, outputs = (
        [tensor(name=name, datatype=datatype, shape=shape) for name, datatype, shape in tensors]
        for tensors in TENSOR_METADATA
    )
    return inputs, outputs

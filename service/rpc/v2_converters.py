"""Open Inference Protocol (KServe V2) tensors <-> NumPy arrays for the digits model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import N_CLASSES, N_PIXELS
from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.serving.errors import InvalidInput
from service.serving.validation import check_pixels, pixels_from_bytes

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

INPUT_NAME = "images"
PROBABILITIES_OUTPUT = "probabilities"
LABEL_OUTPUT = "label"
OUTPUT_NAMES = (PROBABILITIES_OUTPUT, LABEL_OUTPUT)

# Wire datatype -> (name in service.validation.DTYPES, typed `contents` field that carries it).
_INPUT_DATATYPES = {"UINT8": ("uint8", "uint_contents"), "FP32": ("float32", "fp32_contents")}
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
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        names = [tensor.name for tensor in request.inputs]
        raise InvalidInput(f"expected exactly one input named '{INPUT_NAME}', got {names}")
    tensor = request.inputs[0]
    if tensor.datatype not in _INPUT_DATATYPES:
        raise InvalidInput(
            f"input '{INPUT_NAME}' datatype must be UINT8 or FP32, got {tensor.datatype!r}"
        )
    dtype, field = _INPUT_DATATYPES[tensor.datatype]
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
    if min(shape, default=-1) < 0 or values.size != math.prod(shape):
        raise InvalidInput(
            f"input '{INPUT_NAME}' of shape {shape} needs {max(math.prod(shape), 0)} values "
            f"in {field}, got {values.size}"
        )
    return check_pixels(values.reshape(shape), max_rows=max_rows)


def requested_outputs(request: pb.ModelInferRequest) -> list[str]:
    """The output names to return, in request order; all outputs when none is requested."""
    names = [output.name for output in request.outputs]
    if not names:
        return list(OUTPUT_NAMES)
    unknown = [name for name in names if name not in OUTPUT_NAMES]
    if unknown:
        raise InvalidInput(f"unknown output {unknown[0]!r}; this model has {list(OUTPUT_NAMES)}")
    if len(set(names)) != len(names):
        raise InvalidInput(f"output requested more than once: {names}")
    return names


def to_infer_response(
    probabilities: NDArray[np.float32],
    labels: NDArray[np.int64],
    outputs: Sequence[str],
    *,
    model_name: str,
    model_version: str,
    request_id: str = "",
) -> pb.ModelInferResponse:
    """Build the response with `outputs` as raw little-endian tensors (what tritonclient reads).

    `probabilities` is (N, 10) and becomes FP32 [N, 10]; `labels` (N,) becomes INT64 [N].
    """
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id
    )
    for name in outputs:
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
    """(inputs, outputs) metadata of the digits model; -1 is the variable batch dimension.

    The metadata format allows one datatype per tensor, so `images` is advertised as UINT8 (what
    load generators should send: any byte is a valid pixel); FP32 in [0, 1] is accepted as well.
    """
    tensor = pb.ModelMetadataResponse.TensorMetadata
    inputs = [tensor(name=INPUT_NAME, datatype="UINT8", shape=[-1, N_PIXELS])]
    outputs = [
        tensor(name=PROBABILITIES_OUTPUT, datatype="FP32", shape=[-1, N_CLASSES]),
        tensor(name=LABEL_OUTPUT, datatype="INT64", shape=[-1]),
    ]
    return inputs, outputs

"""KServe V2 REST bodies <-> NumPy arrays: JSON tensors and the binary tensor data extension.

The request body is JSON (`{"inputs": [{"name", "datatype", "shape", "data"}], "outputs": ...}`),
or, with the binary tensor data extension (Triton's `binary_data`, what tritonclient.http sends by
default), a JSON header of `Inference-Header-Content-Length` bytes followed by the raw
little-endian tensor bytes of each input whose `parameters.binary_data_size` says how many.
Outputs come back as JSON `data`, or as binary after the JSON header when the request asks
(`parameters.binary_data` on an output, or `binary_data_output` on the request).
Sources: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ and
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
Names, datatypes and pixel checks are shared with gRPC (service.serving.v2_model, .validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from service.serving.errors import InvalidInput
from service.serving.v2_model import INPUT_NAME, PROBABILITIES_OUTPUT, check_input, check_outputs
from service.serving.validation import check_pixels, pixels_from_bytes

__all__ = ["InferRequest", "encode_infer_response", "parse_infer_request"]


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request: checked pixels (n, 784) and what to send back."""

    pixels: NDArray[Any]
    outputs: list[str]
    binary: list[bool]  # per output: raw bytes after the JSON header instead of JSON `data`
    request_id: str


def parse_infer_request(body: bytes, header_length: str | None, *, max_rows: int) -> InferRequest:
    """Decode a V2 REST inference body; InvalidInput names the first problem found.

    `header_length` is the Inference-Header-Content-Length header (None: the body is all JSON).
    """
    json_part, binary = _split(body, header_length)
    try:
        doc = orjson.loads(json_part)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"malformed JSON body: {err}") from None
    doc = _object(doc, "request body")
    inputs = _list(doc.get("inputs"), "inputs")
    tensors = [_object(tensor, "each input") for tensor in inputs]
    names = [tensor.get("name") for tensor in tensors]
    if not all(isinstance(name, str) for name in names):
        raise InvalidInput("every input needs a string 'name'")
    datatype = tensors[0].get("datatype") if tensors else ""
    if not isinstance(datatype, str):
        raise InvalidInput(f"input '{INPUT_NAME}' needs a string 'datatype'")
    dtype = check_input(names, datatype)  # type: ignore[arg-type]  # all str, checked above
    pixels = _pixels(tensors[0], dtype, binary, max_rows)
    outputs, binary_flags = _requested(doc)
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return InferRequest(pixels, outputs, binary_flags, request_id)


def encode_infer_response(
    request: InferRequest,
    probabilities: NDArray[np.float32],
    labels: NDArray[np.int64],
    *,
    model_name: str,
    model_version: str,
) -> tuple[bytes, int | None]:
    """(body, JSON header length or None when no output is binary).

    `probabilities` (N, 10) is sent as FP32 [N, 10], `labels` (N,) as INT64 [N].
    """
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in zip(request.outputs, request.binary, strict=True):
        if name == PROBABILITIES_OUTPUT:
            array: NDArray[Any] = np.ascontiguousarray(probabilities, dtype=np.float32)
            datatype = "FP32"
        else:
            array = np.ascontiguousarray(labels, dtype=np.int64)
            datatype = "INT64"
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1)
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.request_id:
        doc["id"] = request.request_id
    doc["outputs"] = entries
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.strip().isdecimal() or int(header_length) > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length {header_length!r} must be a byte count "
            f"within the body of {len(body)} bytes"
        )
    size = int(header_length)
    return body[:size], body[size:]


def _pixels(tensor: dict[str, Any], dtype: str, binary: bytes, max_rows: int) -> NDArray[Any]:
    """The checked pixels of the `images` tensor, from its binary data or its JSON `data`."""
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise InvalidInput(f"input '{INPUT_NAME}' needs 'shape', a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise InvalidInput(
            f"input '{INPUT_NAME}' has a negative dimension in shape {shape} "
            "(-1 is for metadata only: give the number of images)"
        )
    parameters = _object(tensor.get("parameters", {}), "input parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput("binary_data_size must be a non-negative integer")
        if "data" in tensor:
            raise InvalidInput(f"input '{INPUT_NAME}' has both binary data and JSON 'data'")
        if size != len(binary):
            raise InvalidInput(
                f"binary_data_size is {size} but {len(binary)} bytes follow the JSON header"
            )
        return pixels_from_bytes(binary, dtype, shape, max_rows=max_rows)
    if binary:
        raise InvalidInput(f"{len(binary)} bytes follow the JSON header, but no binary_data_size")
    values = _values(tensor.get("data"), dtype)
    expected = math.prod(shape) if min(shape, default=0) >= 0 else -1
    if values.size != expected:
        raise InvalidInput(
            f"input '{INPUT_NAME}' of shape {shape} needs {max(expected, 0)} values in 'data', "
            f"got {values.size}"
        )
    return check_pixels(values.reshape(shape), max_rows=max_rows)


def _values(data: Any, dtype: str) -> NDArray[Any]:
    """JSON `data` (flat or nested row-major numbers) as a flat uint8 or float32 array."""
    if not isinstance(data, list):
        raise InvalidInput(f"input '{INPUT_NAME}' needs 'data' (a list of numbers) or binary data")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as err:  # ragged nesting, or not numbers
        message = f"input '{INPUT_NAME}' data must be a (nested) list of numbers"
        raise InvalidInput(message) from err
    if array.size == 0:
        return array.reshape(-1)
    if dtype == "uint8":
        if array.dtype.kind not in "iu":
            raise InvalidInput(f"UINT8 input '{INPUT_NAME}' data must be integers in 0..255")
        if int(array.min()) < 0 or int(array.max()) > 255:
            raise InvalidInput(f"UINT8 input '{INPUT_NAME}' has a value outside 0..255")
        return array.astype(np.uint8).reshape(-1)
    if array.dtype.kind not in "iuf":
        raise InvalidInput(f"FP32 input '{INPUT_NAME}' data must be numbers")
    with np.errstate(over="ignore"):  # values past float32's range become inf: refused as such
        return array.astype(np.float32).reshape(-1)


def _requested(doc: dict[str, Any]) -> tuple[list[str], list[bool]]:
    """Output names (all when none is asked) and, for each, whether it goes out as binary."""
    parameters = _object(doc.get("parameters", {}), "request parameters")
    default_binary = parameters.get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise InvalidInput("binary_data_output must be true or false")
    wanted = [_object(o, "each output") for o in _list(doc.get("outputs", []), "outputs")]
    names = [output.get("name") for output in wanted]
    if not all(isinstance(name, str) for name in names):
        raise InvalidInput("every requested output needs a string 'name'")
    outputs = check_outputs(names)  # type: ignore[arg-type]  # all str, checked above
    if not wanted:
        return outputs, [default_binary] * len(outputs)
    flags = []
    for output in wanted:
        output_parameters = _object(output.get("parameters", {}), "output parameters")
        if output_parameters.get("classification"):
            raise InvalidInput("the classification extension is not supported")
        binary = output_parameters.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise InvalidInput("binary_data must be true or false")
        flags.append(binary)
    return outputs, flags


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"'{what}' must be a JSON list")
    return value

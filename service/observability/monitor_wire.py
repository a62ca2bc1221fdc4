"""The byte stream between a server and its monitor process (no pickle, no JSON per record).

Server -> monitor (the monitor's stdin), records back to back, each starting with a kind byte:

- PREDICTION: kind, flags (1: profile for drift, 2: write to the log), pixel dtype (0: none,
  1: uint8, 2: float32), probabilities present (0/1), version (int32, -1: none), n images
  (uint32), unix time (float64 s), latency (float64 s), the UTF-8 lengths of request id,
  method, status (uint16 each) and error (uint32); then those four strings, n x 784 pixels and
  n x 10 little-endian float32 probabilities.
- FEEDBACK: kind, unix time, index, label, version, predicted class, request-id length; the id.
- MODEL: kind, version, length; JSON {"profile": ...}: the manifest's drift reference, sent
  once per version before its first prediction.
- SYNC: kind, token, the records the server dropped so far (for drift, for the log), log
  action (0: none, 1: write what is queued, 2: also close the file). The monitor folds, acts on
  its log, then answers.

Monitor -> server (its stdout): per SYNC, token and length (uint32 each), then the monitor's
metrics in the Prometheus text format.

Packing a prediction costs the event loop ~0.9 us (one struct and the arrays' own buffers),
measured by bench/monitoring.py (`in_process_costs_us`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import N_CLASSES, N_PIXELS

__all__ = [
    "DRIFT",
    "LOG",
    "NO_WRITE",
    "REPLY",
    "ROTATE",
    "WRITE",
    "Batch",
    "Feedback",
    "Model",
    "Prediction",
    "Sync",
    "append_answer",
    "decode",
    "pack_feedback",
    "pack_model",
    "pack_prediction",
    "pack_sync",
]

DRIFT, LOG = 1, 2  # PREDICTION flags
NO_WRITE, WRITE, ROTATE = 0, 1, 2  # SYNC log actions
_PREDICTION, _FEEDBACK, _MODEL, _SYNC = 1, 2, 3, 4
_HEAD = struct.Struct("<BBBBiIddHHHI")
_FEEDBACK_HEAD = struct.Struct("<BdiiiiH")
_MODEL_HEAD = struct.Struct("<BiI")
_SYNC_HEAD = struct.Struct("<BIQQB")
REPLY = struct.Struct("<II")  # token, length of the metrics text that follows
_DTYPES: dict[np.dtype[Any], int] = {np.dtype(np.uint8): 1, np.dtype(np.float32): 2}
_CODES: dict[int, np.dtype[Any]] = {1: np.dtype(np.uint8), 2: np.dtype(np.float32)}
_PROBABILITIES = np.dtype("<f4")


@dataclass(slots=True)
class Prediction:
    """One answered or failed request, as the monitor process reads it."""

    flags: int
    timestamp: float
    request_id: str
    method: str
    version: int | None
    seconds: float
    status: str
    error: str | None
    pixels: NDArray[Any] | None  # (n, 784) uint8 or float32 in [0, 1]
    probabilities: NDArray[np.float32] | None  # (n, 10)
    row: int = -1  # its first row in the Batch it was decoded with (uint8 images), else -1
    n: int = 0  # images


@dataclass(slots=True)
class Feedback:
    timestamp: float
    request_id: str
    index: int
    label: int
    version: int
    predicted: int


@dataclass(slots=True)
class Model:
    version: int
    manifest: dict[str, Any]  # {"profile": ...}: what DriftMonitor reads of a manifest


@dataclass(slots=True)
class Sync:
    token: int
    drift_dropped: int
    log_dropped: int
    log_action: int  # NO_WRITE, WRITE or ROTATE


def pack_prediction(
    flags: int,
    timestamp: float,
    request_id: str,
    method: str,
    version: int | None,
    seconds: float,
    status: str,
    error: str | None,
    pixels: NDArray[Any] | None,
    probabilities: NDArray[np.float32] | None,
) -> list[Any]:
    """The parts of one PREDICTION record (bytes and buffers, to append in order).

    pixels: (n, 784) or (n, 28, 28), uint8 or float in [0, 1] (other float types are sent as
    float32); probabilities: (n, 10). The arrays' buffers are referenced, not copied.
    """
    rid, name, code = _id(request_id), method.encode(), status.encode()
    detail = b"" if error is None else error.encode()
    n, dtype = 0, 0
    pixel_data: bytes | memoryview = b""
    probability_data: bytes | memoryview = b""
    if pixels is not None:
        n = len(pixels)
        dtype = _DTYPES.get(pixels.dtype, 0)
        if dtype == 0:
            pixels, dtype = pixels.astype(np.float32), 2
        pixel_data = np.ascontiguousarray(pixels).data
    if probabilities is not None:
        n = len(probabilities)
        if probabilities.dtype != _PROBABILITIES:
            probabilities = probabilities.astype(_PROBABILITIES)
        probability_data = np.ascontiguousarray(probabilities).data
    head = _HEAD.pack(
        _PREDICTION, flags, dtype, probabilities is not None, -1 if version is None else version,
        n, timestamp, seconds, len(rid), len(name), len(code), len(detail) + (error is not None),
    )  # fmt: skip
    # The error length is stored plus one: 0 means "no error" (None), 1 an empty one.
    return [head, rid, name, code, detail, pixel_data, probability_data]


_NAMES: dict[str, bytes] = {}  # method names, encoded once


def append_answer(
    parts: list[Any],
    flags: int,
    timestamp: float,
    request_id: str,
    method: str,
    version: int,
    seconds: float,
    pixels: NDArray[Any],
    probabilities: NDArray[np.float32],
) -> int:
    """Append the parts of an answer's PREDICTION record (status OK) to `parts`; returns its
    size in bytes. pack_prediction's record, without its checks on the common path (~0.5 us:
    contiguous uint8 or float32 pixels, float32 probabilities, an id under 16,384 characters)."""
    dtype = _DTYPES.get(pixels.dtype, 0)
    if (
        dtype == 0
        or probabilities.dtype != _PROBABILITIES
        or not pixels.flags.c_contiguous
        or not probabilities.flags.c_contiguous
        or len(request_id) >= 16384  # 4 UTF-8 bytes a character at most: fits 65,535
    ):
        packed = pack_prediction(flags, timestamp, request_id, method, version, seconds, "OK",
                                 None, pixels, probabilities)  # fmt: skip
        parts += packed
        return sum(memoryview(part).nbytes for part in packed)
    rid = request_id.encode()
    name = _NAMES.get(method)
    if name is None:
        name = _NAMES.setdefault(method, method.encode())
    parts += (
        _HEAD.pack(_PREDICTION, flags, dtype, 1, version, len(pixels), timestamp, seconds,
                   len(rid), len(name), 2, 0),
        rid, name, b"OK", pixels.data, probabilities.data,
    )  # fmt: skip
    return _HEAD.size + len(rid) + len(name) + 2 + pixels.nbytes + probabilities.nbytes


def pack_feedback(
    timestamp: float, request_id: str, index: int, label: int, version: int, predicted: int
) -> bytes:
    rid = _id(request_id)
    return _FEEDBACK_HEAD.pack(_FEEDBACK, timestamp, index, label, version, predicted,
                               len(rid)) + rid  # fmt: skip


def _id(request_id: str) -> bytes:
    """UTF-8, at most 65,535 bytes (cut at a character boundary)."""
    data = request_id.encode()
    if len(data) > 65535:
        data = data[:65535].decode(errors="ignore").encode()
    return data


def pack_model(version: int, manifest: dict[str, Any]) -> bytes:
    body = json.dumps({"profile": manifest.get("profile")}).encode()
    return _MODEL_HEAD.pack(_MODEL, version, len(body)) + body


def pack_sync(token: int, drift_dropped: int, log_dropped: int, log_action: int) -> bytes:
    return _SYNC_HEAD.pack(_SYNC, token, drift_dropped, log_dropped, log_action)


@dataclass(slots=True)
class Batch:
    """The uint8 images of a decoded stretch, gathered: one array each, rows in record order.

    A PREDICTION with uint8 pixels and probabilities has `row` >= 0: its images are
    pixels[row : row + n] and probabilities[row : row + n] (its own arrays are those views).
    """

    pixels: NDArray[np.uint8]  # (rows, 784)
    probabilities: NDArray[np.float32]  # (rows, 10)


def decode(data: bytes) -> tuple[list[Prediction | Feedback | Model | Sync], int, Batch]:
    """The complete records at the start of `data`, how many bytes they took, and their uint8
    images gathered (Batch).

    The gathered arrays are copies (one per stretch, not per record); float pixels are views of
    `data` (read-only). Raises ValueError on an unknown kind (a framing bug).
    """
    records: list[Prediction | Feedback | Model | Sync] = []
    pixel_spans: list[memoryview] = []  # of the uint8 records, in order
    probability_spans: list[memoryview] = []
    view = memoryview(data)
    at, size, rows = 0, len(data), 0
    head, unpack = _HEAD.size, _HEAD.unpack_from
    while at < size:
        kind = data[at]
        if kind == _PREDICTION:
            if at + head > size:
                break
            (_, flags, dtype, has_probabilities, version, n, timestamp, seconds,
             n_id, n_method, n_status, n_error) = unpack(data, at)  # fmt: skip
            pixel_bytes = n * N_PIXELS * _CODES[dtype].itemsize if dtype else 0
            probability_bytes = n * N_CLASSES * 4 if has_probabilities else 0
            strings = at + head
            a = strings + n_id
            b = a + n_method
            c = b + n_status
            end = c + (n_error - 1 if n_error else 0)
            stop = end + pixel_bytes + probability_bytes
            if stop > size:
                break
            record = Prediction(
                flags, timestamp, data[strings:a].decode(), data[a:b].decode(),
                None if version < 0 else version, seconds, data[b:c].decode(),
                data[c:end].decode() if n_error else None, None, None, -1, n,
            )  # fmt: skip
            if dtype == 1 and has_probabilities:  # the common case: gathered below
                pixel_spans.append(view[end : end + pixel_bytes])
                probability_spans.append(view[end + pixel_bytes : stop])
                record.row = rows
                rows += n
            else:
                if dtype:
                    record.pixels = np.frombuffer(data, _CODES[dtype], n * N_PIXELS, end).reshape(
                        n, N_PIXELS
                    )
                if has_probabilities:
                    record.probabilities = np.frombuffer(
                        data, _PROBABILITIES, n * N_CLASSES, end + pixel_bytes
                    ).reshape(n, N_CLASSES)
            records.append(record)
            at = stop
            continue
        if kind == _FEEDBACK:
            if at + _FEEDBACK_HEAD.size > size:
                break
            _, timestamp, index, label, version, predicted, n_id = _FEEDBACK_HEAD.unpack_from(
                data, at
            )
            end = at + _FEEDBACK_HEAD.size + n_id
            if end > size:
                break
            rid = data[at + _FEEDBACK_HEAD.size : end].decode()
            records.append(Feedback(timestamp, rid, index, label, version, predicted))
        elif kind == _MODEL:
            if at + _MODEL_HEAD.size > size:
                break
            _, version, length = _MODEL_HEAD.unpack_from(data, at)
            end = at + _MODEL_HEAD.size + length
            if end > size:
                break
            records.append(Model(version, json.loads(data[at + _MODEL_HEAD.size : end])))
        elif kind == _SYNC:
            end = at + _SYNC_HEAD.size
            if end > size:
                break
            _, token, drift_dropped, log_dropped, action = _SYNC_HEAD.unpack_from(data, at)
            records.append(Sync(token, drift_dropped, log_dropped, action))
        else:
            raise ValueError(f"monitor stream: unknown record kind {kind} at byte {at}")
        at = end
    batch = Batch(
        np.frombuffer(b"".join(pixel_spans), np.uint8).reshape(rows, N_PIXELS),
        np.frombuffer(b"".join(probability_spans), _PROBABILITIES).reshape(rows, N_CLASSES),
    )
    for item in records:  # their own views of the gathered arrays
        if isinstance(item, Prediction) and item.row >= 0:
            last = item.row + item.n
            item.pixels = batch.pixels[item.row : last]
            item.probabilities = batch.probabilities[item.row : last]
    return records, at, batch

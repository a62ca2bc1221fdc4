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
from collections.abc import Iterator
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
    "Feedback",
    "Model",
    "Prediction",
    "Sync",
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


def decode(data: bytes) -> tuple[list[Prediction | Feedback | Model | Sync], int]:
    """The complete records at the start of `data` and how many bytes they took.

    Arrays are views of `data` (read-only). Raises ValueError on an unknown kind (a framing bug).
    """
    records: list[Prediction | Feedback | Model | Sync] = []
    at, size = 0, len(data)
    for record, end in _records(data, size):
        records.append(record)
        at = end
    return records, at


def _records(data: bytes, size: int) -> Iterator[tuple[Prediction | Feedback | Model | Sync, int]]:
    at = 0
    while at < size:
        kind = data[at]
        if kind == _PREDICTION:
            if at + _HEAD.size > size:
                return
            (_, flags, dtype, has_probabilities, version, n, timestamp, seconds,
             n_id, n_method, n_status, n_error) = _HEAD.unpack_from(data, at)  # fmt: skip
            pixel_bytes = n * N_PIXELS * _CODES[dtype].itemsize if dtype else 0
            probability_bytes = n * N_CLASSES * 4 if has_probabilities else 0
            strings = at + _HEAD.size
            end = strings + n_id + n_method + n_status + max(n_error - 1, 0)
            if end + pixel_bytes + probability_bytes > size:
                return
            a = strings + n_id
            b = a + n_method
            c = b + n_status
            pixels = probabilities = None
            if dtype:
                pixels = np.frombuffer(data, _CODES[dtype], n * N_PIXELS, end).reshape(n, N_PIXELS)
            if has_probabilities:
                probabilities = np.frombuffer(
                    data, _PROBABILITIES, n * N_CLASSES, end + pixel_bytes
                ).reshape(n, N_CLASSES)
            record: Prediction | Feedback | Model | Sync = Prediction(
                flags, timestamp, data[strings:a].decode(), data[a:b].decode(),
                None if version < 0 else version, seconds, data[b:c].decode(),
                data[c:end].decode() if n_error else None, pixels, probabilities,
            )  # fmt: skip
            at = end + pixel_bytes + probability_bytes
        elif kind == _FEEDBACK:
            if at + _FEEDBACK_HEAD.size > size:
                return
            _, timestamp, index, label, version, predicted, n_id = _FEEDBACK_HEAD.unpack_from(
                data, at
            )
            end = at + _FEEDBACK_HEAD.size + n_id
            if end > size:
                return
            rid = data[at + _FEEDBACK_HEAD.size : end].decode()
            record = Feedback(timestamp, rid, index, label, version, predicted)
            at = end
        elif kind == _MODEL:
            if at + _MODEL_HEAD.size > size:
                return
            _, version, length = _MODEL_HEAD.unpack_from(data, at)
            end = at + _MODEL_HEAD.size + length
            if end > size:
                return
            record = Model(version, json.loads(data[at + _MODEL_HEAD.size : end]))
            at = end
        elif kind == _SYNC:
            if at + _SYNC_HEAD.size > size:
                return
            _, token, drift_dropped, log_dropped, action = _SYNC_HEAD.unpack_from(data, at)
            record = Sync(token, drift_dropped, log_dropped, action)
            at += _SYNC_HEAD.size
        else:
            raise ValueError(f"monitor stream: unknown record kind {kind} at byte {at}")
        yield record, at

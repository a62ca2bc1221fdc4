"""The byte stream between a server and its monitor process (no pickle, no JSON per record).

Server -> monitor (the monitor's stdin), records back to back, each starting with a kind byte:

- ANSWERS: many successful answers with uint8 images, as columns (monitor_answers, where the
  server's request path packs them ROWS at a time).
- PREDICTION: one request (failed, or answered with float images): kind, flags (1: profile
  for drift, 2: write to the log), pixel dtype (0: none, 1: uint8, 2: float32), probabilities
  present (0/1), version (int32, -1: none), n images (uint32), unix time (float64 s), latency
  (float64 s), the UTF-8 lengths of request id, method, status (uint16 each) and error
  (uint32); then those four strings, n x 784 pixels and n x 10 little-endian float32
  probabilities.
- FEEDBACK: kind, unix time, index, label, version, predicted class, request-id length; the id.
- MODEL: kind, version, length; JSON {"profile": ...}: the manifest's drift reference, sent
  once per version before its first prediction.
- SYNC: kind, token, the records the server dropped so far (for drift, for the log), log
  action (0: none, 1: write what is queued, 2: also close the file). The monitor folds, acts on
  its log, then answers.

Monitor -> server (its stdout): per SYNC, token and length (uint32 each), then the monitor's
metrics in the Prometheus text format.

Records keep the order the server queued them in. What packing and decoding cost is measured by
bench/monitoring.py (`in_process_costs_us`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import N_CLASSES, N_PIXELS
from service.observability.monitor_answers import KIND as ANSWERS
from service.observability.monitor_answers import (
    Answers,
    answers_size,
    decode_answers,
    utf8_id,
)

__all__ = [
    "ANSWERS",
    "DRIFT",
    "LOG",
    "NO_WRITE",
    "REPLY",
    "ROTATE",
    "WRITE",
    "Answers",
    "Feedback",
    "Model",
    "Prediction",
    "Record",
    "Sync",
    "decode",
    "pack_feedback",
    "pack_model",
    "pack_prediction",
    "pack_sync",
    "record_size",
]

DRIFT, LOG = 1, 2  # PREDICTION and ANSWERS flags
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
    rid, name, code = utf8_id(request_id), method.encode(), status.encode()
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
    rid = utf8_id(request_id)
    return _FEEDBACK_HEAD.pack(_FEEDBACK, timestamp, index, label, version, predicted,
                               len(rid)) + rid  # fmt: skip


def pack_model(version: int, manifest: dict[str, Any]) -> bytes:
    body = json.dumps({"profile": manifest.get("profile")}).encode()
    return _MODEL_HEAD.pack(_MODEL, version, len(body)) + body


def pack_sync(token: int, drift_dropped: int, log_dropped: int, log_action: int) -> bytes:
    return _SYNC_HEAD.pack(_SYNC, token, drift_dropped, log_dropped, log_action)


Record = Prediction | Feedback | Model | Sync | Answers


def record_size(data: bytes) -> int | None:
    """The size in bytes of the ANSWERS or PREDICTION record `data` starts with, once its head
    is there (None otherwise, and for the other kinds: they are small)."""
    if not data:
        return None
    if data[0] == ANSWERS:
        return answers_size(data)
    if data[0] != _PREDICTION or len(data) < _HEAD.size:
        return None
    return _prediction_size(_HEAD.unpack_from(data))


def _prediction_size(head: tuple[Any, ...]) -> int:
    """A PREDICTION record's size in bytes, from its unpacked head."""
    (_, _, dtype, has_probabilities, _, n, _, _, n_id, n_method, n_status, n_error) = head
    strings = n_id + n_method + n_status + (n_error - 1 if n_error else 0)
    pixel_bytes = n * N_PIXELS * _CODES[dtype].itemsize if dtype else 0
    size: int = _HEAD.size + strings + pixel_bytes + (n * N_CLASSES * 4 if has_probabilities else 0)
    return size


def decode(data: bytes) -> tuple[list[Record], int]:
    """The complete records at the start of `data` and how many bytes they took.

    Arrays are read-only views of `data`. Raises ValueError on an unknown kind (a framing bug).
    """
    records: list[Record] = []
    at, size = 0, len(data)
    head, unpack = _HEAD.size, _HEAD.unpack_from
    while at < size:
        kind = data[at]
        if kind == ANSWERS:
            decoded = decode_answers(data, at)
            if decoded is None:
                break
            records.append(decoded[0])
            at = decoded[1]
            continue
        if kind == _PREDICTION:
            if at + head > size:
                break
            fields = unpack(data, at)
            stop = at + _prediction_size(fields)
            if stop > size:
                break
            (_, flags, dtype, has_probabilities, version, n, timestamp, seconds,
             n_id, n_method, n_status, n_error) = fields  # fmt: skip
            a = at + head + n_id
            b = a + n_method
            c = b + n_status
            end = c + (n_error - 1 if n_error else 0)  # where the arrays start
            pixels = probabilities = None
            if dtype:
                pixels = np.frombuffer(data, _CODES[dtype], n * N_PIXELS, end).reshape(n, N_PIXELS)
            if has_probabilities:  # the record's last bytes
                probabilities = np.frombuffer(
                    data, _PROBABILITIES, n * N_CLASSES, stop - n * N_CLASSES * 4
                ).reshape(n, N_CLASSES)
            records.append(Prediction(
                flags, timestamp, data[at + head : a].decode(), data[a:b].decode(),
                None if version < 0 else version, seconds, data[b:c].decode(),
                data[c:end].decode() if n_error else None, pixels, probabilities,
            ))  # fmt: skip
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
    return records, at

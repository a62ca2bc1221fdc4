"""Prediction-log records: one JSON object per line, in gzip files, and how to read them back.

A prediction record:
  {"kind": "prediction", "time": "2026-11-29T19:00:00.123456Z", "request_id": "...",
   "method": "Predict", "version": 3, "latency_ms": 0.41, "status": "OK", "error": null,
   "shape": [n, 28, 28], "input": "<base64 of the n*784 uint8 pixels>",
   "probabilities": "<base64 of the n*10 float32, little-endian>", "labels": [k, ...]}
A failed request has its status code name (e.g. "INVALID_ARGUMENT"), "error" with the details,
and input / probabilities / labels / version only when they were known before it failed. A
feedback record: {"kind": "feedback", "time", "request_id", "index", "label", "version",
"predicted"}. Float inputs in [0, 1] are stored as round(255 x) uint8. The files are standard
gzip: `zcat predictions-*.jsonl.gz | jq` reads them too. Arrays are base64 and each line is
built with an f-string (JSON-escaping only the free-form strings): json.dumps of the same record
with float lists measured ~10x slower, and the writer shares the interpreter lock with the
event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from registry.storage import is_object_store

__all__ = [
    "FILE_GLOB",
    "decode_input",
    "decode_probabilities",
    "encode_feedback",
    "encode_prediction",
    "log_files",
    "read_records",
]

FILE_GLOB = "predictions-*.jsonl.gz"


_last_second = [(-1, "")]  # (whole second, its text): one tuple, swapped whole (threads)


def _utc(timestamp: float) -> str:
    """ISO 8601 UTC with microseconds; the date and time part is formatted once per second."""
    second = int(timestamp)
    cached = _last_second[0]
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _last_second[0] = cached
    return f"{cached[1]}.{int((timestamp - second) * 1e6):06d}Z"


def _b64(array: NDArray[Any]) -> str:
    # The array's own buffer (no tobytes copy); a copy only if it is not C-contiguous.
    return binascii.b2a_base64(np.ascontiguousarray(array).data, newline=False).decode("ascii")


_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]*\Z").match  # needs no JSON escaping (ids we generate)


def _json_string(text: str) -> str:
    return f'"{text}"' if _PLAIN(text) else json.dumps(text)


def encode_prediction(
    timestamp: float,
    request_id: str,
    method: str,
    version: int | None,
    seconds: float,
    status: str,
    error: str | None,
    pixels: NDArray[Any] | None,
    probabilities: NDArray[np.float32] | None,
) -> bytes:
    """One prediction record as a JSON line (bytes ending in a newline)."""
    line = (
        f'{{"kind":"prediction","time":"{_utc(timestamp)}","request_id":{_json_string(request_id)},'
        f'"method":"{method}","version":{"null" if version is None else int(version)},'
        f'"latency_ms":{seconds * 1e3:.4f},"status":"{status}",'
        f'"error":{"null" if error is None else json.dumps(error)}'
    )
    if pixels is not None:
        if pixels.dtype != np.uint8:
            pixels = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
        line += f',"shape":[{len(pixels)},28,28],"input":"{_b64(pixels)}"'
    if probabilities is not None:
        labels = ",".join(map(str, probabilities.argmax(axis=1).tolist()))
        if probabilities.dtype.str != "<f4":  # already little-endian float32 from the server
            probabilities = probabilities.astype("<f4")
        line += f',"probabilities":"{_b64(probabilities)}","labels":[{labels}]'
    return (line + "}\n").encode()


def encode_feedback(
    timestamp: float, request_id: str, index: int, label: int, version: int, predicted: int
) -> bytes:
    """One feedback record as a JSON line."""
    record = {
        "kind": "feedback", "time": _utc(timestamp), "request_id": request_id, "index": index,
        "label": label, "version": version, "predicted": predicted,
    }  # fmt: skip
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode_input(record: dict[str, Any]) -> NDArray[np.uint8] | None:
    """The logged images of a prediction record, uint8 (n, 28, 28); None when not logged.

    Raises ValueError when the payload does not match the recorded shape.
    """
    if record.get("input") is None:
        return None
    data = base64.b64decode(record["input"])
    shape = tuple(int(s) for s in record["shape"])
    if len(data) != int(np.prod(shape)) or shape[1:] != (28, 28):
        raise ValueError(f"record {record.get('request_id')!r}: input does not match {shape}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def decode_probabilities(record: dict[str, Any]) -> NDArray[np.float32] | None:
    """The logged probabilities of a prediction record, (n, 10) float32; None when absent."""
    if record.get("probabilities") is None:
        return None
    return np.frombuffer(base64.b64decode(record["probabilities"]), dtype="<f4").reshape(-1, 10)


def log_files(directory: Path) -> list[Path]:
    """The log's files, oldest first (names start with their UTC creation time)."""
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"no prediction log directory {directory}")
    return sorted(Path(directory).glob(FILE_GLOB))


def read_records(destination: Path | str) -> Iterator[dict[str, Any]]:
    """Every record of the log (a directory or an s3:// prefix), oldest file first.

    The file being written has no gzip trailer yet: everything up to its last flush is read
    (an s3:// log holds closed files only). A line that is not JSON raises ValueError naming
    the file.
    """
    if is_object_store(destination):
        from service.observability.log_store import S3LogStore

        store = S3LogStore(destination)
        for name in store.files(FILE_GLOB.split("*")[0]):
            yield from _decode(name, store.chunks(name))
        return
    for path in log_files(Path(destination)):
        yield from _decode(path.name, _file_chunks(path))


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 16):
            yield chunk


def _decode(name: str, chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    # zlib with the gzip wrapper, not gzip.open: a stream without its trailer (the active file,
    # flushed with Z_SYNC_FLUSH) decodes up to the last flush instead of raising EOFError.
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending = b""
    for chunk in chunks:
        pending += decoder.decompress(chunk)
        while decoder.unused_data:  # a concatenated gzip member follows
            rest = decoder.unused_data
            decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            pending += decoder.decompress(rest)
        *lines, pending = pending.split(b"\n")
        yield from (_parse(name, line) for line in lines if line)
    if pending.strip():
        yield _parse(name, pending)


def _parse(name: str, line: bytes) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name}: a line is not JSON ({err})") from None
    return record

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
from service.observability.monitor_answers import Answers

__all__ = [
    "FILE_GLOB",
    "decode_input",
    "decode_probabilities",
    "encode_answers",
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
_PLAIN_BYTES = re.compile(rb"[A-Za-z0-9_.:/-]*\Z").match


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


def encode_answers(answers: Answers, rows: NDArray[np.bool_]) -> bytes:
    """The JSON lines of the rows of an ANSWERS record (monitor_answers) where `rows` (K,) is
    True: byte for byte what encode_prediction gives for each (status OK), in bulk.

    Requests of one image (the common case) are encoded together: everything after a line's
    `"input":"` has a fixed width then (base64 of the pixels and probabilities, one label), so
    it is assembled for every row at once as one array (_tails); each line is then one
    %-format and a slice. 4.5 -> ~1.5 us a record (bench/monitoring.py, `in_process_costs_us`).
    """
    index = np.flatnonzero(rows)
    if len(index) == 0:
        return b""
    starts = answers.starts()[index]
    images = answers.images[index]
    if not (images == 1).all():  # several images in a request: one by one
        return _one_by_one(answers, index, starts, images)
    names = [name.encode() for name in answers.methods]
    timestamps = answers.timestamps[index]
    whole = timestamps.astype(np.int64)  # int(t), as _utc: the same float64 operations
    micros = ((timestamps - whole) * 1e6).astype(np.int64)
    texts = {second: _utc(second).split(".")[0].encode() for second in set(whole.tolist())}
    columns = zip(whole.tolist(), micros.tolist(), _id_fields(answers, index),
                  answers.method[index].tolist(), answers.versions[index].tolist(),
                  (answers.seconds[index] * 1e3).tolist(), strict=True)  # fmt: skip
    if len(index) == len(answers.images):  # every row, one image each: no gather
        pixels, probabilities = answers.pixels, answers.probabilities
    else:
        pixels, probabilities = answers.pixels[starts], answers.probabilities[starts]
    tails = _bytes_of(_tails(pixels, probabilities))
    width = len(tails) // len(index)
    parts: list[bytes | memoryview] = []
    add = parts.append
    for i, (second, micro, rid, method, version, milliseconds) in enumerate(columns):
        add(_HEAD_LINE % (texts[second], micro, rid, names[method], version, milliseconds))
        add(tails[i * width : (i + 1) * width])
    return b"".join(parts)


def _one_by_one(
    answers: Answers, index: NDArray[np.intp], starts: NDArray[np.int64], images: NDArray[Any]
) -> bytes:
    """encode_prediction for each chosen row (requests of several images)."""
    ids = answers.request_ids()
    return b"".join(
        encode_prediction(answers.timestamps[i].item(), ids[i], answers.methods[answers.method[i]],
                          answers.versions[i].item(), answers.seconds[i].item(), "OK", None,
                          answers.pixels[first : first + n],
                          answers.probabilities[first : first + n])
        for i, first, n in zip(index.tolist(), starts.tolist(), images.tolist(), strict=True)
    )  # fmt: skip


_HEAD_LINE = (
    b'{"kind":"prediction","time":"%s.%06dZ","request_id":%s,"method":"%s","version":%d,'
    b'"latency_ms":%.4f,"status":"OK","error":null,"shape":[1,28,28],"input":"'
)
_PROBABILITIES_KEY = np.frombuffer(b'","probabilities":"', np.uint8)
_LABELS_KEY = np.frombuffer(b'","labels":[', np.uint8)
_END = np.frombuffer(b"]}\n", np.uint8)


def _tails(pixels: NDArray[np.uint8], probabilities: NDArray[np.float32]) -> NDArray[np.uint8]:
    """(k, width) the ends of k one-image lines after their `"input":"`, as ASCII codes."""
    columns = [
        _b64_rows(pixels),
        np.broadcast_to(_PROBABILITIES_KEY, (len(pixels), len(_PROBABILITIES_KEY))),
        _b64_rows(np.ascontiguousarray(probabilities, "<f4").view(np.uint8)),
        np.broadcast_to(_LABELS_KEY, (len(pixels), len(_LABELS_KEY))),
        (probabilities.argmax(axis=1) + ord("0")).astype(np.uint8)[:, None],  # one digit
        np.broadcast_to(_END, (len(pixels), len(_END))),
    ]
    return np.concatenate(columns, axis=1)


def _id_fields(answers: Answers, index: NDArray[np.intp]) -> list[bytes]:
    """The JSON strings of the chosen rows' request ids."""
    all_starts, all_ends = answers.id_spans()
    starts, ends_chosen = all_starts[index].tolist(), all_ends[index].tolist()
    blob = answers.ids
    if _PLAIN_BYTES(blob):  # every id needs no escaping (ids we generate, UUIDs)
        return [b'"%s"' % blob[a:b] for a, b in zip(starts, ends_chosen, strict=True)]
    return [_json_string(blob[a:b].decode()).encode()
            for a, b in zip(starts, ends_chosen, strict=True)]  # fmt: skip


def _bytes_of(array: NDArray[np.uint8]) -> memoryview:
    """The bytes of an array, flat (a copy only when it is not C-contiguous)."""
    return np.ascontiguousarray(array).reshape(-1).data


_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8
)


def _b64_rows(data: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Base64 (RFC 4648, padded) of each row of a (k, L) uint8 array, as (k, 4 * ceil(L / 3))
    ASCII codes: row i is binascii.b2a_base64(data[i]) without its newline.

    The first L // 3 * 3 bytes of every row are whole 3-byte groups, so one b2a_base64 of
    those columns splits into the rows' encodings; the last one or two bytes are encoded here.
    """
    k, length = data.shape
    whole = length // 3 * 3
    body = np.frombuffer(
        binascii.b2a_base64(_bytes_of(data[:, :whole]), newline=False), np.uint8
    ).reshape(k, whole // 3 * 4)
    left = length - whole
    if left == 0:
        return body
    tail = np.full((k, 4), ord("="), np.uint8)
    first = data[:, whole]
    second = data[:, whole + 1] if left == 2 else np.zeros(k, np.uint8)
    tail[:, 0] = _ALPHABET[first >> 2]
    tail[:, 1] = _ALPHABET[((first & 3) << 4) | (second >> 4)]
    if left == 2:
        tail[:, 2] = _ALPHABET[(second & 15) << 2]
    return np.concatenate([body, tail], axis=1)


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

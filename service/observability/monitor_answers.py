"""The ANSWERS record of the monitor stream: many answered requests as columns, packed at once.

Why columns: with one record per request, the monitor process spent 4.3 us per record decoding
it (a struct, four strings, an object) and the server 0.8 us packing it, on the two cores the
server needs (bench/monitoring.py, `in_process_costs_us`). Here the server's request path only
appends a row tuple; every `ROWS` rows (and at each send) they are packed together, and the
monitor reads them back as NumPy views of the stream, without a Python object per request.

Layout (little-endian), after the kind byte 5:
  rows K, images N, length of the method names, length of the ids (uint32 each);
  the method names (UTF-8, joined by "\\n"); per row: unix time (float64 s), latency
  (float64 s), model version (int32), images (uint32), id length (uint16), flags (uint8,
  monitor_wire.DRIFT / LOG), method index (uint8); the ids (UTF-8, back to back); N x 784 uint8
  pixels; N x 10 float32 probabilities.
Every row is a successful answer with uint8 pixels: other answers and failures go as
monitor_wire PREDICTION records, in the same order.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import N_CLASSES, N_PIXELS

__all__ = [
    "KIND",
    "MAX_IMAGES",
    "ROWS",
    "Answers",
    "Row",
    "answers_size",
    "decode_answers",
    "pack_answers",
    "pack_columns",
    "utf8_id",
]

KIND = 5
ROWS = 128  # rows packed together on the request path (~0.1 MB of images at batch 1)
MAX_IMAGES = 1024  # images in one record (~0.8 MB): the monitor reassembles a record whole
_HEAD = struct.Struct("<BIIII")
_ROW_BYTES = 8 + 8 + 4 + 4 + 2 + 1 + 1
_MAX_ID = 65535  # bytes: a longer id is cut at a character boundary

# (flags, unix time, request id, method, version, latency s, pixels (n, 784) or (n, 28, 28)
# uint8, probabilities (n, 10) float32); the arrays are referenced until packed and must not
# change meanwhile.
Row = tuple[int, float, str, str, int, float, NDArray[np.uint8], NDArray[np.float32]]


def pack_answers(rows: Sequence[Row]) -> tuple[list[Any], int]:
    """The parts of one ANSWERS record (bytes and arrays' buffers, joined when sent) and its
    size in bytes. rows: at least one; pixels uint8, probabilities float32, any memory layout."""
    return pack_columns(*zip(*rows, strict=True))


def pack_columns(
    flags: Sequence[int],
    times: Sequence[float],
    ids: Sequence[str],
    methods: Sequence[str],
    versions: Sequence[int],
    seconds: Sequence[float],
    pixels: Sequence[NDArray[np.uint8]],
    probabilities: Sequence[NDArray[np.float32]],
) -> tuple[list[Any], int]:
    """pack_answers with its rows given as columns (each of the same length, at least one)."""
    names = list(dict.fromkeys(methods))
    if len(names) == 1:
        method_index = bytes(len(ids))
    else:
        lookup = {name: i for i, name in enumerate(names)}
        method_index = bytes(lookup[name] for name in methods)
    id_bytes = [request_id.encode() for request_id in ids]
    if max(map(len, id_bytes)) > _MAX_ID:
        id_bytes = [utf8_id(request_id) for request_id in ids]
    images = list(map(len, pixels))
    k, n = len(ids), sum(images)
    names_blob = "\n".join(names).encode()
    ids_blob = b"".join(id_bytes)
    columns = struct.pack(
        f"<{k}d{k}d{k}i{k}I{k}H{k}B", *times, *seconds, *versions, *images,
        *map(len, id_bytes), *flags,
    )  # fmt: skip
    parts: list[Any] = [_HEAD.pack(KIND, k, n, len(names_blob), len(ids_blob)), names_blob,
                        columns, method_index, ids_blob]  # fmt: skip
    try:  # one C call: no array object per row (each cost ~0.5 us in a busy server)
        pixel_data = np.concatenate(pixels)
    except ValueError:  # (n, 784) and (n, 28, 28) mixed
        pixel_data = np.concatenate([p.reshape(-1) for p in pixels])
    parts.append(np.ascontiguousarray(pixel_data).data)
    parts.append(np.ascontiguousarray(np.concatenate(probabilities), "<f4").data)
    size = _HEAD.size + len(names_blob) + k * _ROW_BYTES + len(ids_blob) + n * (N_PIXELS + 40)
    return parts, size  # as _layout reads it back


def utf8_id(request_id: str) -> bytes:
    """A request id as UTF-8, at most 65,535 bytes (cut at a character boundary)."""
    data = request_id.encode()
    if len(data) > _MAX_ID:
        data = data[:_MAX_ID].decode(errors="ignore").encode()
    return data


@dataclass(slots=True)
class Answers:
    """One ANSWERS record as the monitor process reads it: columns of K rows, views of the
    stream (read-only). Row i's images are pixels[starts[i] : starts[i] + images[i]]."""

    methods: list[str]  # method names; `method` indexes them
    timestamps: NDArray[np.float64]  # (K,) unix time, s
    seconds: NDArray[np.float64]  # (K,) latency, s
    versions: NDArray[np.int32]  # (K,)
    images: NDArray[np.uint32]  # (K,) images per row
    id_lengths: NDArray[np.uint16]  # (K,) UTF-8 bytes
    flags: NDArray[np.uint8]  # (K,) monitor_wire.DRIFT | LOG
    method: NDArray[np.uint8]  # (K,)
    ids: bytes  # the request ids, UTF-8, back to back
    pixels: NDArray[np.uint8]  # (N, 784)
    probabilities: NDArray[np.float32]  # (N, 10)

    def __len__(self) -> int:
        return len(self.flags)

    def id_spans(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(K,) start and end of each row's request id in `ids`."""
        return _spans(self.id_lengths)

    def request_ids(self) -> list[str]:
        """Every row's request id."""
        starts, ends = self.id_spans()
        blob = self.ids
        return [blob[a:b].decode() for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def starts(self) -> NDArray[np.int64]:
        """(K,) each row's first image."""
        return _spans(self.images)[0]

    def image_mask(self, rows: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """(N,) the images of the rows where `rows` (K,) is True."""
        return np.repeat(rows, self.images)


def _spans(lengths: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Where each of consecutive pieces of `lengths` starts and ends."""
    ends = np.cumsum(lengths, dtype=np.int64)
    return ends - lengths, ends


def answers_size(data: bytes, at: int = 0) -> int | None:
    """The size in bytes of the ANSWERS record at byte `at`, once its head is there."""
    layout = _layout(data, at)
    return None if layout is None else layout[-1] - at


def _layout(data: bytes, at: int) -> tuple[int, int, int, int, int, int, int, int] | None:
    """(rows, images, and where the names, columns, ids, pixels, probabilities and the record
    end) for the ANSWERS record at byte `at`; None before its head is there."""
    if at + _HEAD.size > len(data):
        return None
    _, k, n, names_length, ids_length = _HEAD.unpack_from(data, at)
    names_at = at + _HEAD.size
    columns_at = names_at + names_length
    ids_at = columns_at + k * _ROW_BYTES
    pixels_at = ids_at + ids_length
    probabilities_at = pixels_at + n * N_PIXELS
    end = probabilities_at + n * N_CLASSES * 4
    return k, n, names_at, columns_at, ids_at, pixels_at, probabilities_at, end


def decode_answers(data: bytes, at: int) -> tuple[Answers, int] | None:
    """The ANSWERS record starting at byte `at` of `data` and the byte after it; None if it is
    not complete yet."""
    layout = _layout(data, at)
    if layout is None or layout[-1] > len(data):
        return None
    k, n, names_at, columns_at, ids_at, pixels_at, probabilities_at, end = layout

    def column(dtype: str, count: int, offset: int) -> Any:
        return np.frombuffer(data, dtype, count, offset)

    at = columns_at
    timestamps = column("<f8", k, at)
    seconds = column("<f8", k, at + 8 * k)
    versions = column("<i4", k, at + 16 * k)
    images = column("<u4", k, at + 20 * k)
    id_lengths = column("<u2", k, at + 24 * k)
    flags = column("u1", k, at + 26 * k)
    method = column("u1", k, at + 27 * k)
    answers = Answers(
        data[names_at:columns_at].decode().split("\n"), timestamps, seconds, versions, images,
        id_lengths, flags, method, data[ids_at:pixels_at],
        column("u1", n * N_PIXELS, pixels_at).reshape(n, N_PIXELS),
        column("<f4", n * N_CLASSES, probabilities_at).reshape(n, N_CLASSES),
    )  # fmt: skip
    return answers, end

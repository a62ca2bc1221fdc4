"""The IDX file format of MNIST: decode (gzip or raw bytes) with strict validation, and encode.

Layout: two zero bytes, a dtype code, the number of dimensions n, then n big-endian uint32
sizes, then the row-major payload in big-endian order. Nothing is allocated from the header's
word alone: the payload length must match the sizes exactly, and gzip input is decompressed
with a hard cap, so a hostile header or a zip bomb cannot exhaust memory.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 512 * 1024 * 1024  # decompressed size cap; MNIST's largest file is 47 MB


def _decompress(data: bytes, max_bytes: int) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            raw = stream.read(max_bytes + 1)
    except (OSError, EOFError) as err:
        raise ValueError(f"corrupt gzip stream: {err}") from err
    if len(raw) > max_bytes:
        raise ValueError(f"decompressed IDX data exceeds the {max_bytes}-byte limit")
    return raw


def decode_idx(data: bytes, max_bytes: int = MAX_BYTES) -> NDArray[np.generic]:
    """Decode an IDX file's bytes (gzip-compressed or raw) into a native-endian array."""
    data = bytes(data)
    if data[:2] == _GZIP_MAGIC:
        data = _decompress(data, max_bytes)
    if len(data) < 4:
        raise ValueError(f"IDX data too short for a header: {len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"bad IDX magic number: first two bytes are {data[:2].hex()}, expected 0000"
        )
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise ValueError(f"unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise ValueError("IDX header declares zero dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"IDX header truncated: {ndim} dimensions need {header_len} bytes, got {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if expected > max_bytes:
        raise ValueError(f"IDX header declares shape {shape}: {expected} bytes exceeds the limit")
    actual = len(data) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"IDX payload {problem}: shape {shape} needs {expected} bytes, got {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    native: NDArray[np.generic] = array.astype(dtype.newbyteorder("="))
    return native


def decode_images(data: bytes, rows: int = 28, cols: int = 28) -> NDArray[np.uint8]:
    """Decode an IDX image file: uint8, shape (n, rows, cols)."""
    images = decode_idx(data)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (rows, cols):
        raise ValueError(
            f"expected uint8 images of shape (n, {rows}, {cols}), got {images.dtype} {images.shape}"
        )
    return images.view(np.uint8)


def decode_labels(data: bytes, n_classes: int = 10) -> NDArray[np.uint8]:
    """Decode an IDX label file: uint8, shape (n,), every label in [0, n_classes)."""
    labels = decode_idx(data)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"expected 1-D uint8 labels, got {labels.dtype} {labels.shape}")
    if labels.size and int(labels.max()) >= n_classes:
        raise ValueError(f"label {int(labels.max())} is outside [0, {n_classes})")
    return labels.view(np.uint8)


def encode_idx(array: NDArray[np.generic], compress: bool = False) -> bytes:
    """Encode an array as IDX bytes (gzip-compressed when ``compress``)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    raw = header + payload
    return gzip.compress(raw, mtime=0) if compress else raw

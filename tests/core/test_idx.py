"""IDX decoding: round trips, gzip, and every malformed input named in the error."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from core.idx import decode_idx, decode_images, decode_labels, encode_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(dtype: type, compress: bool) -> None:
    rng = np.random.default_rng(0)
    array = (rng.random((3, 4, 5)) * 100).astype(dtype)
    decoded = decode_idx(encode_idx(array, compress=compress))
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == (3, 4, 5)
    np.testing.assert_array_equal(decoded, array)


def test_header_layout_is_big_endian() -> None:
    data = encode_idx(np.array([[1, 2, 3]], dtype=np.int16))
    assert data[:4] == bytes([0, 0, 0x0B, 2])
    assert struct.unpack(">2I", data[4:12]) == (1, 3)
    assert data[12:] == b"\x00\x01\x00\x02\x00\x03"


def test_images_and_labels() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(decode_images(encode_idx(images, compress=True)), images)
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    np.testing.assert_array_equal(decode_labels(encode_idx(labels)), labels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX dtype code 0x07"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "header truncated"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 9, "payload truncated"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x00" * 3, "trailing bytes"),
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 60000, 60000, 60000), "exceeds the limit"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ],
)
def test_malformed_inputs_are_named(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_idx(data)


def test_truncated_gzip_and_decompression_cap() -> None:
    full = encode_idx(np.zeros((100, 28, 28), np.uint8), compress=True)
    with pytest.raises(ValueError, match="corrupt gzip"):
        decode_idx(full[: len(full) // 2])
    bomb = gzip.compress(b"\x00" * 2_000_000)
    with pytest.raises(ValueError, match="exceeds the 1000-byte limit"):
        decode_idx(bomb, max_bytes=1000)


def test_wrong_kinds_of_file() -> None:
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(n, 28, 28\)"):
        decode_images(encode_idx(np.zeros((2, 27, 28), np.uint8)))
    with pytest.raises(ValueError, match="expected 1-D uint8 labels"):
        decode_labels(encode_idx(np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValueError, match=r"label 10 is outside \[0, 10\)"):
        decode_labels(encode_idx(np.array([1, 10], np.uint8)))
    with pytest.raises(ValueError, match="cannot store dtype"):
        encode_idx(np.zeros(2, np.complex64))

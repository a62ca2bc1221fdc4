"""encode_images packs client arrays into the wire tensor without changing their values."""

from __future__ import annotations

import numpy as np
import pytest

from service.client import encode_images
from service.generated.digits.v1 import digits_pb2 as pb


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 784), (0, 784)])
def test_uint8_round_trips_bytes(shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    tensor = encode_images(images)
    assert tensor.dtype == pb.DTYPE_UINT8
    assert tuple(tensor.shape) == shape
    assert np.array_equal(np.frombuffer(tensor.data, np.uint8).reshape(shape), images)


def test_float64_becomes_little_endian_float32() -> None:
    images = np.random.default_rng(1).random((2, 784))
    tensor = encode_images(images)
    assert tensor.dtype == pb.DTYPE_FLOAT32
    decoded = np.frombuffer(tensor.data, "<f4").reshape(2, 784)
    assert np.array_equal(decoded, images.astype(np.float32))


def test_single_image_is_a_batch_of_one() -> None:
    tensor = encode_images(np.zeros((28, 28), np.uint8))
    assert tuple(tensor.shape) == (1, 28, 28)


def test_int_arrays_in_pixel_range_become_uint8() -> None:
    tensor = encode_images(np.full((1, 784), 255, dtype=np.int64))
    assert tensor.dtype == pb.DTYPE_UINT8
    assert tensor.data == bytes([255]) * 784


@pytest.mark.parametrize(
    "images",
    [np.zeros((2, 27, 28), np.uint8), np.zeros((2, 10), np.float32), np.zeros((1, 784), bool)],
)
def test_bad_client_arrays_raise_value_error(images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="images must"):
        encode_images(images)


def test_out_of_range_ints_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"uint8 0\.\.255"):
        encode_images(np.full((1, 784), 256, dtype=np.int64))

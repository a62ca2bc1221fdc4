"""pixels_from_bytes / check_pixels: good tensors decode exactly, each bad one names its problem."""

from __future__ import annotations

import numpy as np
import pytest

from service.serving.errors import InvalidInput
from service.serving.validation import check_pixels, pixels_from_bytes


def _decode(data: bytes, dtype: str = "uint8", shape: tuple[int, ...] = (2, 784)) -> np.ndarray:
    return pixels_from_bytes(data, dtype, shape, max_rows=16)


@pytest.mark.parametrize("shape", [(2, 784), (2, 28, 28)])
def test_uint8_bytes_decode_to_rows(shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    pixels = _decode(images.tobytes(), "uint8", shape)
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 784)
    assert np.array_equal(pixels, images.reshape(2, 784))


def test_float32_bytes_decode_little_endian() -> None:
    images = np.linspace(0.0, 1.0, 2 * 784, dtype="<f4").reshape(2, 784)
    pixels = _decode(images.tobytes(), "float32")
    assert pixels.dtype == np.float32 and np.array_equal(pixels, images)


@pytest.mark.parametrize(
    ("data", "dtype", "shape", "message"),
    [
        (bytes(1567), "uint8", (2, 784), "1567 bytes, expected 1568"),
        (bytes(1569), "uint8", (2, 784), "1569 bytes, expected 1568"),
        (bytes(784 * 4 - 1), "float32", (1, 784), "3135 bytes, expected 3136"),
        (bytes(784), "float64", (1, 784), "unknown dtype 'float64'"),
        (bytes(784), "", (1, 784), "unknown dtype ''"),
        (b"", "uint8", (0, 784), "empty batch"),
        (bytes(17 * 784), "uint8", (17, 784), "17 images is over the limit of 16"),
        (bytes(784), "uint8", (784,), "shape [N, 784] or [N, 28, 28], got [784]"),
        (bytes(784), "uint8", (1, 28, 27), "got [1, 28, 27]"),
        (bytes(784), "uint8", (1, 1, 784), "got [1, 1, 784]"),
        (bytes(784), "uint8", (-1, 784), "shape [-1, 784] has a negative dimension"),
        (bytes(784), "uint8", (-1, -784), "shape [-1, -784] has a negative dimension"),
        (bytes(784), "uint8", (1, -784), "shape [1, -784] has a negative dimension"),
        (bytes(784), "uint8", (), "got []"),
    ],
)
def test_bad_tensors_raise_invalid_input(
    data: bytes, dtype: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        _decode(data, dtype, shape)


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "NaN/Inf"), (np.inf, "NaN/Inf"), (-np.inf, "NaN/Inf"), (1.5, "in \\[0, 1\\]"),
     (-0.001, "in \\[0, 1\\]")],
)  # fmt: skip
def test_bad_float_values_name_image_and_pixel(value: float, message: str) -> None:
    images = np.full((2, 784), 0.5, dtype="<f4")
    images[1, 300] = value
    with pytest.raises(InvalidInput, match=message) as err:
        _decode(images.tobytes(), "float32")
    assert "image 1 pixel 300" in str(err.value)


def test_float_bounds_are_inclusive() -> None:
    images = np.zeros((1, 784), dtype="<f4")
    images[0, :2] = [0.0, 1.0]
    assert np.array_equal(_decode(images.tobytes(), "float32", (1, 784)), images)


def test_check_pixels_reshapes_and_converts() -> None:
    out = check_pixels(np.full((3, 28, 28), 0.25, dtype=np.float64), max_rows=4)
    assert out.shape == (3, 784) and out.dtype == np.float32
    raw = np.zeros((1, 784), np.uint8)
    assert check_pixels(raw, max_rows=4).dtype == np.uint8


@pytest.mark.parametrize(
    "array", [np.zeros((1, 784), np.int32), np.full((1, 784), 2.0), np.zeros((5, 784), np.uint8)]
)
def test_check_pixels_rejects(array: np.ndarray) -> None:
    with pytest.raises(InvalidInput):
        check_pixels(array, max_rows=4)

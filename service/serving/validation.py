"""Wire tensors to checked pixel arrays: every bad input becomes InvalidInput naming the problem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from core.config import IMAGE_SIDE, N_PIXELS
from service.serving.errors import InvalidInput

__all__ = ["DTYPES", "check_pixels", "check_shape", "pixels_from_bytes"]

PIXELS = N_PIXELS  # a local name: the checks below run on every request
# Wire dtype name -> little-endian NumPy dtype. Both adapters map their own enum onto these names.
DTYPES: dict[str, np.dtype] = {"uint8": np.dtype("u1"), "float32": np.dtype("<f4")}
# The same in this machine's byte order (what the forward pass gets); made once, not per request.
_NATIVE = {name: dtype.newbyteorder("=") for name, dtype in DTYPES.items()}


def check_shape(shape: Sequence[int], max_rows: int) -> int:
    """Number of images for a [N, 784] or [N, 28, 28] shape, or InvalidInput."""
    # Indexed directly (no tuple built): this runs on every request, mostly at batch 1.
    n_dims = len(shape)
    if min(shape, default=0) < 0:
        dims = [int(d) for d in shape]
        raise InvalidInput(
            f"shape {dims} has a negative dimension; -1 marks a variable size in model "
            "metadata only, a request gives the actual size (e.g. [1, 784])"
        )
    if not (
        (n_dims == 2 and shape[1] == PIXELS)
        or (n_dims == 3 and shape[1] == IMAGE_SIDE and shape[2] == IMAGE_SIDE)
    ):
        dims = [int(d) for d in shape]
        raise InvalidInput(f"images must have shape [N, 784] or [N, 28, 28], got {dims}")
    rows = int(shape[0])
    if rows <= 0:
        raise InvalidInput(f"empty batch: shape {[int(d) for d in shape]} has no images")
    if rows > max_rows:
        raise InvalidInput(f"batch of {rows} images is over the limit of {max_rows}")
    return rows


def pixels_from_bytes(
    data: bytes, dtype: str, shape: Sequence[int], *, max_rows: int
) -> NDArray[np.uint8] | NDArray[np.float32]:
    """Decode a packed row-major tensor into checked pixels (n, 784), uint8 or float32."""
    if dtype not in DTYPES:
        raise InvalidInput(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    rows = check_shape(shape, max_rows)
    np_dtype = DTYPES[dtype]
    expected = rows * PIXELS * np_dtype.itemsize
    if len(data) != expected:
        raise InvalidInput(
            f"images data has {len(data)} bytes, expected {expected} for shape "
            f"{[int(d) for d in shape]} of {dtype}"
        )
    array = np.frombuffer(data, dtype=np_dtype).reshape(rows, PIXELS)
    if np_dtype.kind != "f":
        return array
    _check_float_range(array)
    return array.astype(_NATIVE[dtype], copy=False)


def check_pixels(array: NDArray[np.generic], *, max_rows: int) -> NDArray[np.generic]:
    """Check an already-built pixel array (e.g. typed V2 contents) and reshape it to (n, 784).

    uint8 is taken as 0..255; float arrays must be float32-representable values in [0, 1].
    """
    rows = check_shape(array.shape, max_rows)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array.reshape(rows, PIXELS))
    if array.dtype.kind != "f":
        raise InvalidInput(f"unknown dtype {array.dtype.name!r}; expected one of {sorted(DTYPES)}")
    pixels = np.ascontiguousarray(array.reshape(rows, PIXELS), dtype=np.float32)
    _check_float_range(pixels)
    return pixels


def _check_float_range(array: NDArray[np.floating]) -> None:
    # min/max propagate NaN and catch Inf in two passes; the exact reason is sought only on failure.
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(np.flatnonzero(~finite.ravel())[0])
        raise InvalidInput(
            f"image {bad // PIXELS} pixel {bad % PIXELS} is {array.flat[bad]}: NaN/Inf not allowed"
        )
    bad = int(np.flatnonzero(((array < 0.0) | (array > 1.0)).ravel())[0])
    raise InvalidInput(
        f"float pixels must be in [0, 1]; image {bad // PIXELS} pixel {bad % PIXELS} "
        f"is {float(array.flat[bad])}"
    )

"""Turning MNIST images into network inputs: (n, 28, 28) uint8 -> (n, 784) floats in [0, 1]."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray


def to_features(images: NDArray[np.generic], dtype: DTypeLike = np.float32) -> NDArray[np.floating]:
    """Flatten each image to a row and scale uint8 pixels by 1/255 (floats are kept as they are)."""
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"expected images of shape (n, ...), got {images.shape}")
    flat = images.reshape(images.shape[0], -1)
    if images.dtype == np.uint8:
        return flat.astype(dtype) * (1.0 / 255.0)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"expected uint8 or float images, got {images.dtype}")
    return flat.astype(dtype, copy=False)

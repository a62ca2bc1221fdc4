"""Data augmentation: a random small translation of a batch of square images."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def random_shift(
    rows: NDArray[np.floating], max_shift: int, rng: np.random.Generator
) -> NDArray[np.floating]:
    """Translate every flattened square image of the batch by one random (dy, dx).

    The offset is drawn per batch, not per image: batches are reshuffled every epoch, so each
    image still meets a different offset each epoch, and one bulk slice copy costs ~20 us per
    batch where per-image offsets cost ~30x more (they dominated the epoch time). Pixels shifted
    in from outside are 0 (background).
    """
    n_rows, n_features = rows.shape
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(f"random_shift needs square images, got {n_features} features")
    if max_shift == 0:
        return rows
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    images = rows.reshape(n_rows, side, side)
    shifted = np.zeros_like(images)
    shifted[:, max(dy, 0) : side + min(dy, 0), max(dx, 0) : side + min(dx, 0)] = images[
        :, max(-dy, 0) : side + min(-dy, 0), max(-dx, 0) : side + min(-dx, 0)
    ]
    return shifted.reshape(n_rows, n_features)

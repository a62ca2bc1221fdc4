"""Data augmentation: random small translations of square images, done per epoch in bulk."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def random_shift(
    rows: NDArray[np.floating], max_shift: int, rng: np.random.Generator
) -> NDArray[np.floating]:
    """Shift each flattened square image by its own random (dy, dx) in [-max_shift, max_shift].

    Pixels shifted in from outside are 0 (background). Images are grouped by offset so the
    work is a few bulk slice copies instead of one small copy per image.
    """
    n_rows, n_features = rows.shape
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(f"random_shift needs square images, got {n_features} features")
    if max_shift == 0:
        return rows
    images = rows.reshape(n_rows, side, side)
    shifted = np.zeros_like(images)
    offsets = rng.integers(-max_shift, max_shift + 1, size=(n_rows, 2))
    span = 2 * max_shift + 1
    group = (offsets[:, 0] + max_shift) * span + (offsets[:, 1] + max_shift)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(span * span + 1))
    for code in range(span * span):
        members = order[bounds[code] : bounds[code + 1]]
        if members.size == 0:
            continue
        dy, dx = code // span - max_shift, code % span - max_shift
        shifted[members, max(dy, 0) : side + min(dy, 0), max(dx, 0) : side + min(dx, 0)] = images[
            members, max(-dy, 0) : side + min(-dy, 0), max(-dx, 0) : side + min(-dx, 0)
        ]
    return shifted.reshape(n_rows, n_features)

"""Edge clutter: ink-like regions that touch the picture's border (a table beside the sheet,
the sheet's own edge, a finger), removed when a digit stands apart from them."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["reached_from_edge", "without_edge_clutter"]

_WORK_SIDE = 256  # the border-connected regions are traced on a copy at most this large
# "At the border" means within this share of the shorter side: the sheet's edge lies a little
# inside a photo's frame, with a strip of table between.
_MARGIN_SHARE = 0.04
# Drop what touches the border only when the rest holds at least this share of the ink, so a
# digit that itself reaches the edge (a tight crop, a full canvas) is never erased for a speck.
_MIN_INSIDE_SHARE = 0.1


def without_edge_clutter(ink: NDArray[np.float32], threshold: float) -> NDArray[np.float32]:
    """``ink`` (H, W) with the regions above ``threshold`` that reach the border set to 0.

    Unchanged when nothing touches the border, or when what does not touch it holds less
    than a tenth of the ink (then the border-touching part is the digit).
    """
    mask = ink > threshold
    touching = _reached_from_border(mask)
    if not touching.any():
        return ink
    total = float(ink[mask].sum())
    inside = float(ink[mask & ~touching].sum())
    if inside < _MIN_INSIDE_SHARE * total:
        return ink
    cleaned: NDArray[np.float32] = np.where(touching, np.float32(0.0), ink)
    return cleaned


def reached_from_edge(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The pixels of ``mask`` (H, W) 4-connected to the frame's outermost rows and columns."""
    return _reached_from_border(mask, margin=1)


def _reached_from_border(mask: NDArray[np.bool_], margin: int | None = None) -> NDArray[np.bool_]:
    """The pixels of ``mask`` 4-connected to a pixel near the border (within ``margin`` pixels
    of the working copy, default _MARGIN_SHARE of its shorter side; a morphological
    reconstruction, traced on a max-pooled copy of at most _WORK_SIDE pixels a side)."""
    height, width = mask.shape
    factor = max(1, math.ceil(max(height, width) / _WORK_SIDE))
    rows, cols = math.ceil(height / factor), math.ceil(width / factor)
    padded = np.zeros((rows * factor, cols * factor), dtype=bool)
    padded[:height, :width] = mask
    small: NDArray[np.bool_] = np.asarray(
        padded.reshape(rows, factor, cols, factor).any(axis=(1, 3))
    )
    if margin is None:
        margin = max(1, round(_MARGIN_SHARE * min(small.shape)))
    reached: NDArray[np.bool_] = small.copy()
    reached[margin:-margin, margin:-margin] = False
    while True:
        grown: NDArray[np.bool_] = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= small
        if np.array_equal(grown, reached):
            break
        reached = grown
    full = np.repeat(np.repeat(reached, factor, axis=0), factor, axis=1)[:height, :width]
    touching: NDArray[np.bool_] = full & mask
    return touching

"""A sheet of paper photographed on a darker surface (a table): find it, keep only it.

With a wide dark surround the picture's typical pixel is the table, not the paper, so the
polarity test and the paper estimate would take the whole sheet for a white "digit" with the
strokes cut out. The sheet is the part of the picture that the dark surround, traced inwards
from the frame's edge, does not reach (so the strokes on it, enclosed by paper, belong to it).
It counts as a sheet only when it looks like one: large, close to a rectangle, mostly paper,
and separated from the surround by a clear step of brightness (unlike a shadow or a lamp's
gradient, whose dark side fades into the paper).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from service.client.clutter import reached_from_edge

__all__ = ["crop_to_sheet"]

_SIDE = 128  # the sheet is found on a copy at most this large (its outline needs no more)
_MIN_AREA = 0.15  # share of the frame the sheet covers at least
# Share of its bounding box the sheet covers: an upright rectangle (turned by up to ~4 degrees)
# passes; an ellipse (a bold light "0" on black: pi/4) does not.
_MIN_FILL = 0.85
_INK_SHARE = (0.01, 0.35)  # of the sheet, the ink covers: something, yet strokes, not a blob
_MIN_EDGE = 0.4  # share of the frame's outermost pixels the surround covers (it frames the sheet)
_MIN_STEP = 0.2  # (paper's 10th percentile - surround's 90th) / paper's median, at least


def crop_to_sheet(picture: NDArray[np.float32]) -> NDArray[np.float32]:
    """``picture`` (H, W, 0-255) cut to the bright sheet it shows on a darker surround, with
    what is left of the surround inside the cut painted the paper's median; the picture itself
    when no such sheet is found (no surround, a gradient, a light digit on dark paper)."""
    height, width = picture.shape
    factor = max(1, math.ceil(max(height, width) / _SIDE))
    size = (max(1, width // factor), max(1, height // factor))
    small = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BOX))
    bright = small > _otsu(small)
    outside = reached_from_edge(~bright)
    sheet = ~outside
    area = int(sheet.sum())
    if area < _MIN_AREA * sheet.size or _edge_share(outside) < _MIN_EDGE:
        return picture
    rows, cols = np.flatnonzero(sheet.any(axis=1)), np.flatnonzero(sheet.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if area < _MIN_FILL * (bottom - top) * (right - left):
        return picture
    paper_pixels = small[sheet & bright]
    ink = int((sheet & ~bright).sum())
    if not _INK_SHARE[0] * area <= ink <= _INK_SHARE[1] * area or paper_pixels.size == 0:
        return picture
    paper = float(np.median(paper_pixels))
    step = float(np.percentile(paper_pixels, 10)) - float(np.percentile(small[outside], 90))
    if step < _MIN_STEP * paper:
        return picture
    # One small pixel in from the outline: the sheet's own edge (a soft rim) stays outside.
    top, left = (top + 1) * factor, (left + 1) * factor
    bottom, right = min(height, (bottom - 1) * factor), min(width, (right - 1) * factor)
    if bottom - top < 2 or right - left < 2:
        return picture
    full = np.repeat(np.repeat(outside, factor, axis=0), factor, axis=1)
    full = np.pad(full, ((0, max(0, height - full.shape[0])), (0, max(0, width - full.shape[1]))),
                  mode="edge")[:height, :width]  # fmt: skip
    cropped = picture[top:bottom, left:right]
    result: NDArray[np.float32] = np.where(full[top:bottom, left:right], np.float32(paper), cropped)
    return result


def _edge_share(mask: NDArray[np.bool_]) -> float:
    edge = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(edge.mean())


def _otsu(values: NDArray[np.float32]) -> float:
    """The grey level that best splits ``values`` into two classes (Otsu 1979, "A threshold
    selection method from gray-level histograms"): maximal between-class variance."""
    counts, edges = np.histogram(values, bins=256, range=(0.0, 256.0))
    weights = counts.astype(np.float64) / max(1, counts.sum())
    centres = (edges[:-1] + edges[1:]) / 2.0
    below = np.cumsum(weights)
    mean_below = np.cumsum(weights * centres)
    total_mean = mean_below[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * below - mean_below) ** 2 / (below * (1.0 - below))
    between = np.nan_to_num(between, nan=0.0, posinf=0.0)
    return float(edges[int(np.argmax(between)) + 1])

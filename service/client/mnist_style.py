"""Turn a grayscale picture of a digit into an MNIST-style 28x28 input, the way MNIST was made.

Steps: light ink on dark paper (inverted when the border is mostly bright); the paper is
estimated locally and subtracted, so a photo under uneven light (a shadow, a lamp on one side)
leaves only the strokes; the paper's grain is removed; the strokes are scaled to full range,
cropped, fitted into a 20x20 box (aspect kept, anti-aliased) and pasted into 28x28 with the
centre of mass at the centre (LeCun et al., "Gradient-based learning applied to document
recognition", 1998, section III.A). No hard threshold: grey levels are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from core.config import IMAGE_SIDE
from service.client.clutter import without_edge_clutter
from service.client.sheet import crop_to_sheet

__all__ = ["BOX", "SIDE", "to_mnist"]

SIDE = IMAGE_SIDE  # MNIST canvas
BOX = 20  # MNIST fits each digit's longest side into a 20 px box before centring
# Ink after background removal: pixels above 10% of full scale count for the bounding box,
# so faint JPEG noise around a stroke does not widen the crop.
_INK_THRESHOLD = 25.5
_BLANK_CONTRAST = 8.0  # below this many grey levels between ink and paper, there is no digit
_WORK_SIDE = 1024  # larger photos are reduced first: a digit needs no more detail than that
_PAPER_SIDE = 64  # the paper is estimated on a copy this small (smooth light needs no more)
_DIMMEST_PAPER = 16.0  # grey level below which paper is too dark to measure ink against
_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation of Gaussian noise
_PEAK_PERCENTILE = 99.0  # of the ink pixels: full scale for the strokes, ignoring outliers


def to_mnist(gray: NDArray[np.generic], invert: bool | None = None) -> NDArray[np.uint8]:
    """Normalise a grayscale (H, W) picture (0-255) into an MNIST-style uint8 (28, 28) digit.

    ``invert=None`` treats the picture as dark ink on light paper when most of it (the paper)
    is nearer its brightest than its darkest tone. Raises ValueError when no digit stands out;
    the message suggests the other polarity only when that would find one.
    """
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise ValueError(f"expected a non-empty 2-D grayscale image, got shape {gray.shape}")
    picture = _reduce(np.asarray(gray, dtype=np.float32))
    if invert is not False:  # light ink on dark paper has no bright sheet to look for
        picture = crop_to_sheet(picture)
    dark_ink = _looks_dark_on_light(picture) if invert is None else invert
    ink = _strokes(picture, dark_ink)
    if ink is None:
        raise ValueError(_no_digit(picture, dark_ink, forced=invert is not None))
    return _centre_by_mass(_fit_box(_crop_to_ink(ink)))


def _looks_dark_on_light(picture: NDArray[np.float32]) -> bool:
    """True when the typical pixel (the paper: most of the picture) is nearer the lightest tone
    than the darkest, i.e. the ink is what is darker.

    Unlike the border's brightness this holds for a sheet photographed on a dark table, and for
    dim light (paper at 100 of 255 is still the light part). Extremes are taken after a 3x3
    median, so one hot or dead pixel does not decide; thin 1-px drawings fall back to the raw
    extremes.
    """
    median = float(np.median(picture))
    smoothed = np.asarray(Image.fromarray(picture).filter(ImageFilter.MedianFilter(3)))
    low, high = float(smoothed.min()), float(smoothed.max())
    if high - low < _BLANK_CONTRAST:
        low, high = float(picture.min()), float(picture.max())
    return high - median < median - low


def _strokes(picture: NDArray[np.float32], dark_ink: bool) -> NDArray[np.float32] | None:
    """Light-on-dark strokes scaled to 0-255 with the paper removed, or None if there are none.

    Dark ink reflects a fixed fraction of the light that falls on the paper, so it is measured
    as a fraction of the local paper level (a stroke in the shadow is as dark, relatively, as
    one in the light); light strokes on dark paper (screens, drawings) by their difference.
    """
    if dark_ink:
        paper = np.float32(255.0) - _paper(np.float32(255.0) - picture)
        ink = (paper - picture) / np.maximum(paper, _DIMMEST_PAPER) * np.float32(255.0)
    else:
        ink = picture - _paper(picture)
    ink = np.clip(ink, 0.0, None)
    # Paper grain and sensor noise: what the (mostly paper) picture varies by anyway.
    median = float(np.median(ink))
    spread = float(np.median(np.abs(ink - median))) * _MAD_TO_SIGMA
    ink = np.clip(ink - (median + 3.0 * spread), 0.0, None)
    # A table or the sheet's edge at the picture's border is not part of the digit.
    ink = without_edge_clutter(ink, 0.05 * float(ink.max()))  # below the 10% crop threshold
    strokes = ink[ink > 0.0]
    # The stroke's own level, not its brightest pixel: one glint would dim the whole digit.
    peak = float(np.percentile(strokes, _PEAK_PERCENTILE)) if strokes.size else 0.0
    if peak < _BLANK_CONTRAST:
        return None
    scaled: NDArray[np.float32] = np.minimum(ink * np.float32(255.0 / peak), np.float32(255.0))
    return scaled


def _paper(ink: NDArray[np.float32]) -> NDArray[np.float32]:
    """The dark paper's level under light strokes: a grey opening (min, then max) of a small copy.

    The window is a third of the small copy's shorter side, wider than any stroke of a digit
    that fits the picture, so strokes vanish and only the light falling on the paper is left.
    """
    height, width = ink.shape
    scale = min(1.0, _PAPER_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BOX), dtype=np.float32)
    window = max(3, min(small.shape) // 3 | 1)  # odd
    # Pad by a whole window of the edge value: the opening keeps a plateau that wide, so the
    # light at the picture's edge is estimated as well as in the middle (no rim of false ink).
    padded = np.pad(small, window, mode="edge")
    opened = _rank(_rank(padded, window, np.min), window, np.max)[1:-1, 1:-1]
    paper = Image.fromarray(opened).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(paper, dtype=np.float32)


def _rank(
    image: NDArray[np.float32], window: int, pick: Callable[..., NDArray[np.float32]]
) -> NDArray[np.float32]:
    """Min or max (``pick``) over every whole ``window`` x ``window`` neighbourhood.

    The result is ``window - 1`` pixels smaller in each dimension (no padding here).
    """
    views = np.lib.stride_tricks.sliding_window_view(image, (window, window))
    return np.ascontiguousarray(pick(views, axis=(2, 3)))


def _no_digit(picture: NDArray[np.float32], dark_ink: bool, forced: bool) -> str:
    """Why no digit was found, with a hint only when the hint would help."""
    if forced and _strokes(picture, not dark_ink) is not None:
        used, other = ("--invert", "--no-invert") if dark_ink else ("--no-invert", "--invert")
        return (
            f"no digit found with {used}: the picture looks like "
            f"{'light ink on dark' if dark_ink else 'dark ink on light'} paper; "
            f"try {other} or leave the flag out"
        )
    spread = float(picture.max() - picture.min())
    if spread < _BLANK_CONTRAST:
        if spread < 0.5:
            return "no digit found: the image is blank: every pixel has the same grey level"
        levels = f"{spread:.0f} grey level{'s' if round(spread) != 1 else ''}"
        return f"no digit found: the image is blank: its greys differ by at most {levels}"
    return "no digit found: nothing stands out from the paper"


def _reduce(picture: NDArray[np.float32]) -> NDArray[np.float32]:
    height, width = picture.shape
    if max(height, width) <= _WORK_SIDE:
        return picture
    scale = _WORK_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    reduced = Image.fromarray(picture).resize(size, Image.Resampling.BOX)
    return np.asarray(reduced, dtype=np.float32)


def _border(image: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def _crop_to_ink(ink: NDArray[np.float32]) -> NDArray[np.float32]:
    rows = np.flatnonzero((ink > _INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > _INK_THRESHOLD).any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit_box(ink: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale so the longest side is BOX pixels, keeping the aspect ratio (Lanczos anti-aliasing)."""
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32)).resize(
        size, Image.Resampling.LANCZOS
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)


def _centre_by_mass(digit: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Paste into SIDE x SIDE so the centre of mass lands on the canvas centre (LeCun's rule)."""
    height, width = digit.shape
    total = float(digit.sum())
    rows, cols = np.indices(digit.shape)
    centre_row = float((rows * digit).sum()) / total
    centre_col = float((cols * digit).sum()) / total
    middle = (SIDE - 1) / 2.0
    # Clamp so a lopsided glyph is shifted as far as possible without losing ink off the edge.
    top = int(np.clip(round(middle - centre_row), 0, SIDE - height))
    left = int(np.clip(round(middle - centre_col), 0, SIDE - width))
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = digit
    return np.rint(canvas).astype(np.uint8)

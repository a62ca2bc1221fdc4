"""Image loading: PNG/JPEG files and IDX archives turned into MNIST-style uint8 (28, 28) digits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from core.config import IMAGE_SIDE

SIDE = IMAGE_SIDE  # MNIST canvas
BOX = 20  # MNIST fits each digit's longest side into a 20 px box before centring
# Ink after background removal: pixels above 10% of full scale count for the bounding box,
# so faint JPEG noise around a stroke does not widen the crop.
_INK_THRESHOLD = 25.5
_BLANK_CONTRAST = 8.0  # below this many grey levels between ink and paper, there is no digit
_IDX_MAGIC = b"\x00\x00"  # every IDX file starts with two zero bytes; PNG/JPEG never do
_GZIP_MAGIC = b"\x1f\x8b"


def load_files(
    paths: Sequence[str | Path], invert: bool | None = None
) -> tuple[list[str], NDArray[np.uint8]]:
    """Load images and IDX archives into (names, uint8 (N, 28, 28)); IDX items are `file[i]`."""
    names: list[str] = []
    batches: list[NDArray[np.uint8]] = []
    for path in map(Path, paths):
        data = _read(path)
        if data.startswith((_IDX_MAGIC, _GZIP_MAGIC)):
            images = _decode_idx(path, data)
            names.extend(f"{path}[{i}]" for i in range(len(images)))
            batches.append(images)
        else:
            names.append(str(path))
            batches.append(_picture_digit(path, data, invert)[np.newaxis])
    if not batches:
        raise ValueError("no input files given")
    return names, np.concatenate(batches)


def load_image(path: str | Path, invert: bool | None = None) -> NDArray[np.uint8]:
    """Load one PNG/JPEG file as an MNIST-style uint8 (28, 28) digit."""
    path = Path(path)
    return _picture_digit(path, _read(path), invert)


def load_bytes(data: bytes, name: str = "image", invert: bool | None = None) -> NDArray[np.uint8]:
    """Decode PNG/JPEG bytes (e.g. an upload) as an MNIST-style uint8 (28, 28) digit, exactly as
    load_image does for a file; ValueError (naming `name`) for an unreadable or blank picture."""
    return _picture_digit(Path(name), data, invert)


def to_mnist(gray: NDArray[np.generic], invert: bool | None = None) -> NDArray[np.uint8]:
    """Normalise a grayscale (H, W) picture (0-255) the way MNIST was made.

    Light ink on dark paper, cropped to the ink, longest side scaled to 20 px (anti-aliased,
    aspect kept), pasted into 28x28 with the centre of mass at the centre.
    ``invert=None`` inverts when the border is mostly bright (dark ink on white paper).
    """
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise ValueError(f"expected a non-empty 2-D grayscale image, got shape {gray.shape}")
    ink = gray.astype(np.float32)
    if invert is None:
        invert = float(_border(ink).mean()) > 127.5
    if invert:
        ink = 255.0 - ink
    # Paper is whatever the border is most of the time; removing it keeps grey paper
    # (photos, scans) from counting as ink.
    ink = np.clip(ink - float(np.median(_border(ink))), 0.0, None)
    peak = float(ink.max())
    if peak < _BLANK_CONTRAST:
        raise ValueError("no digit found: the image is blank (try --invert or --no-invert)")
    ink *= 255.0 / peak
    return _centre_by_mass(_fit_box(_crop_to_ink(ink)))


def _picture_digit(path: Path, data: bytes, invert: bool | None) -> NDArray[np.uint8]:
    try:
        return to_mnist(_decode_picture(path, data), invert=invert)
    except ValueError as err:
        message = str(err)
        raise ValueError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from err


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read file ({err.strerror or err})") from err


def _decode_picture(path: Path, data: bytes) -> NDArray[np.uint8]:
    """Decode PNG/JPEG bytes to grayscale; transparent areas become white paper."""
    from io import BytesIO

    try:
        with Image.open(BytesIO(data)) as opened:
            opened.load()
            picture: Image.Image = opened
            if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                rgba = picture.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(paper, rgba)
            return np.asarray(picture.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable PNG/JPEG/IDX image ({_pil_reason(err)})") from err


def _pil_reason(err: Exception) -> str:
    """PIL's reason in the user's words: never the in-memory `<_io.BytesIO object at 0x...>`."""
    if isinstance(err, UnidentifiedImageError):
        return "unknown image format"
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", " the data", str(err))


def _decode_idx(path: Path, data: bytes) -> NDArray[np.uint8]:
    from core.idx import decode_images  # core is numpy-only; imported late like the CLI

    try:
        return decode_images(data)  # also inflates gzip, with core's size guard
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a valid IDX image file ({err})") from err


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

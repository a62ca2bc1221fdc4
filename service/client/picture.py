"""Decode a picture file into what a person sees in a viewer: upright luminance, 0-255 floats.

Every Pillow mode is read at its own bit depth and scaled (not clamped) to 0-255: 1, L, P,
RGB, CMYK, YCbCr, LAB, HSV, I;16 (16-bit PNG), I (32-bit), F (float). Orientation metadata is
applied (EXIF Orientation, ImageOps.exif_transpose). Transparent areas are composited over a
background that contrasts with what is drawn: a viewer shows a white stroke on a transparent
canvas on a dark page and a black stroke on a light one, so both keep their stroke.
"""

from __future__ import annotations

import re
from io import BytesIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["decode_picture"]

# ITU-R BT.601 luma weights, the ones Pillow's own "L" conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")  # Pillow names its file object
_SHOWN_BYTES = 8
# File signatures of the common formats: a file that starts with one is that format, damaged.
_SIGNATURES = (
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _first_bytes(data: bytes) -> str:
    """``it starts with 6e 6f 74 20 ("not ")``: what the file is, for a person to recognise."""
    head = data[:_SHOWN_BYTES]
    text = head.decode("ascii", errors="replace")
    shown = f' ("{text}")' if text.isprintable() and "\ufffd" not in text else ""
    return f"it starts with bytes {head.hex(' ')}{shown}"


def decode_picture(data: bytes) -> NDArray[np.float32]:
    """Luminance (H, W) in [0, 255] of the picture as displayed (upright, alpha composited).

    Raises ValueError for bytes Pillow cannot decode (empty, unknown format, truncated file,
    decompression bomb); the message describes the bytes, never a Python object.
    """
    if not data:
        raise ValueError("empty (0 bytes), not a picture")
    try:
        with Image.open(BytesIO(data)) as opened:
            opened.load()
            picture = ImageOps.exif_transpose(opened)
            gray, alpha = _luminance_and_alpha(picture)
    except UnidentifiedImageError:
        known = next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)
        if known is not None:  # the right signature, then too little or garbled data
            raise ValueError(f"a damaged or truncated {known} ({len(data)} bytes)") from None
        reason = f"not PNG, JPEG or another format Pillow reads; {_first_bytes(data)}"
        raise ValueError(f"not a picture ({reason})") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"a picture too large to decode safely ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = _OBJECT_REPR.sub("the data", str(err)) or type(err).__name__
        raise ValueError(f"a damaged or truncated picture ({reason})") from None
    if alpha is not None and float(alpha.min()) < 1.0:
        gray = _composite(gray, alpha)
    return gray * np.float32(255.0)


def _luminance_and_alpha(
    picture: Image.Image,
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """Luminance and alpha in [0, 1] (alpha None when the picture has no transparency)."""
    if picture.mode in _HIGH_DEPTH:
        values = np.asarray(picture).astype(np.float32)
        transparent = picture.info.get("transparency")
        alpha = None
        if isinstance(transparent, int):  # a 16-bit PNG's tRNS key: that grey is see-through
            alpha = (np.asarray(picture) != transparent).astype(np.float32)
        return values / _full_scale(picture.mode, values), alpha
    if picture.mode in _ALPHA_MODES or "transparency" in picture.info:
        rgba = np.asarray(picture.convert("RGBA"), dtype=np.float32) / np.float32(255.0)
        luma: NDArray[np.float32] = (rgba[..., :3] @ _LUMA).astype(np.float32)
        return luma, rgba[..., 3]
    if picture.mode != "L":
        picture = picture.convert("RGB").convert("L")  # CMYK, YCbCr, LAB, HSV, P, 1, RGB
    return np.asarray(picture, dtype=np.float32) / np.float32(255.0), None


def _full_scale(mode: str, values: NDArray[np.float32]) -> np.float32:
    """The value that means white: 65535 for 16-bit modes; for I and F, guessed from the range."""
    if mode.startswith("I;16"):
        return np.float32(65535.0)
    peak = float(values.max()) if values.size else 0.0
    for scale in (1.0, 255.0, 65535.0):  # float [0, 1], 8-bit or 16-bit data in a wide mode
        if peak <= scale:
            return np.float32(scale)
    return np.float32(peak)


def _composite(gray: NDArray[np.float32], alpha: NDArray[np.float32]) -> NDArray[np.float32]:
    """Composite over white when the drawn (opaque) content is dark, over black when light."""
    weight = float(alpha.sum())
    drawn = float((gray * alpha).sum()) / weight if weight > 0 else 1.0
    paper = np.float32(1.0 if drawn < 0.5 else 0.0)
    return gray * alpha + paper * (np.float32(1.0) - alpha)

"""Image files for `digits predict`: pictures and IDX archives turned into MNIST-style digits.

Pictures (any format and mode Pillow reads) go through client.picture (what a viewer shows)
and client.mnist_style (28x28 the MNIST way); IDX image files are already MNIST-shaped and
pass through untouched. A batch prepares every file on its own: one unreadable file gives one
error for that file, not for the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.client.mnist_style import BOX, SIDE, to_mnist
from service.client.picture import decode_picture

__all__ = ["BOX", "SIDE", "Prepared", "load_files", "load_image", "prepare_files", "to_mnist"]

_IDX_MAGIC = b"\x00\x00"  # every IDX file starts with two zero bytes; PNG/JPEG never do
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Prepared:
    """One input of a batch: its name (``file`` or ``file[i]`` for IDX items) and either the
    uint8 (28, 28) digit or the reason the file could not be used (``error``, naming the file).
    """

    name: str
    image: NDArray[np.uint8] | None = None
    error: str | None = None


def prepare_files(paths: Sequence[str | Path], invert: bool | None = None) -> list[Prepared]:
    """Prepare every file on its own, in order; IDX files give one entry per image."""
    prepared: list[Prepared] = []
    for path in map(Path, paths):
        try:
            data = _read(path)
            if data.startswith((_IDX_MAGIC, _GZIP_MAGIC)):
                images = _decode_idx(path, data)
                prepared += [Prepared(f"{path}[{i}]", image) for i, image in enumerate(images)]
            else:
                prepared.append(Prepared(str(path), _picture_digit(path, data, invert)))
        except ValueError as err:
            prepared.append(Prepared(str(path), error=str(err)))
    return prepared


def load_files(
    paths: Sequence[str | Path], invert: bool | None = None
) -> tuple[list[str], NDArray[np.uint8]]:
    """Load images and IDX archives into (names, uint8 (N, 28, 28)); IDX items are `file[i]`.

    Raises ValueError (naming the file) at the first file that cannot be used; use
    prepare_files to get every file's own result instead.
    """
    if not paths:
        raise ValueError("no input files given")
    prepared = prepare_files(paths, invert)
    for item in prepared:
        if item.error is not None:
            raise ValueError(item.error)
    images = [item.image for item in prepared if item.image is not None]
    if not images:
        raise ValueError("the input files hold no images")
    return [item.name for item in prepared], np.stack(images)


def load_image(path: str | Path, invert: bool | None = None) -> NDArray[np.uint8]:
    """Load one picture file as an MNIST-style uint8 (28, 28) digit (ValueError if unusable)."""
    path = Path(path)
    return _picture_digit(path, _read(path), invert)


def load_bytes(data: bytes, name: str = "image", invert: bool | None = None) -> NDArray[np.uint8]:
    """Decode PNG/JPEG bytes (e.g. an upload) as an MNIST-style uint8 (28, 28) digit, exactly as
    load_image does for a file; ValueError (naming `name`) for an unreadable or blank picture."""
    return _picture_digit(Path(name), data, invert)


def _picture_digit(path: Path, data: bytes, invert: bool | None) -> NDArray[np.uint8]:
    try:
        return to_mnist(decode_picture(data), invert=invert)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read file ({err.strerror or err})") from err


def _decode_idx(path: Path, data: bytes) -> NDArray[np.uint8]:
    from core.idx import decode_images  # core is numpy-only; imported late like the CLI

    try:
        return decode_images(data)  # also inflates gzip, with core's size guard
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a valid IDX image file ({err})") from err

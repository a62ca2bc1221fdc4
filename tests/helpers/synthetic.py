"""Small, learnable MNIST look-alikes written as the four gzip IDX files, with their sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core.idx import encode_idx

NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Digit k is a bright 8x8 square at its own place on a 4x3 grid, over noise."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[index, 2 + row * 9 : 10 + row * 9, 1 + col * 7 : 7 + col * 7] = rng.integers(
            180, 256, size=(8, 6)
        )
    return images


def write_synthetic_mnist(
    directory: Path, n_train: int = 600, n_test: int = 200, seed: int = 0
) -> dict[str, str]:
    """Write the four files into ``directory``; return name -> sha256 of each file."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    digests = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        rng.shuffle(labels)
        image_name, label_name = NAMES[split]
        for name, array in ((image_name, _images(labels, rng)), (label_name, labels)):
            data = encode_idx(array, compress=True)
            (directory / name).write_bytes(data)
            digests[name] = hashlib.sha256(data).hexdigest()
    return digests

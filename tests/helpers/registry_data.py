"""Registry test data: 784-128-40-10 parameters in awkward layouts, manifests, disk faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SHAPES = {"W1": (128, 784), "b1": (128, 1), "W2": (40, 128), "b2": (40, 1), "W3": (10, 40)}
SHAPES["b3"] = (10, 1)


def toy_params(seed: int = 0, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """MLP 784-128-40-10 parameters; the weight matrices are deliberately non-contiguous views."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, (rows, cols) in SHAPES.items():
        if key.startswith("W"):
            # Transposed view (Fortran order) of a (cols, rows) array.
            params[key] = rng.standard_normal((cols, rows)).astype(dtype).T
        else:
            # Every other column of a wider array: strided, neither C nor F contiguous.
            params[key] = rng.standard_normal((rows, 2 * cols)).astype(dtype)[:, ::2]
    return params


def toy_manifest(seed: int = 0) -> dict[str, Any]:
    return {
        "loss": "cross_entropy",
        "seed": seed,
        "hyperparameters": {"lr": 0.001, "epochs": 2, "batch_size": 128},
        "metrics": {"accuracy": 0.9731, "cross_entropy": 0.09},
        "train_metrics": {"accuracy": 0.99},
        "datasets": {"train-images-idx3-ubyte.gz": "ab" * 32},
        "git_revision": "0123abc",
        "parent_version": None,
    }


def flip_byte(path: Path, offset: int) -> None:
    path.chmod(0o644)  # published files are read-only; the test plays the disk fault
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))

"""Toy MLP parameters and a registry publisher for the service tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from registry import Registry

SHAPES = {"W1": (128, 784), "b1": (128, 1), "W2": (40, 128), "b2": (40, 1), "W3": (10, 40)}
SHAPES["b3"] = (10, 1)
MODEL = "digits"


def toy_params(seed: int) -> dict[str, np.ndarray]:
    """784-128-40-10 float32 parameters scaled so that predictions are not all one class."""
    rng = np.random.default_rng(seed)
    return {
        key: (rng.standard_normal(shape) / np.sqrt(shape[1] if key[0] == "W" else 10.0)).astype(
            np.float32
        )
        for key, shape in SHAPES.items()
    }


def publish(registry: Registry, seed: int, *, production: bool = True) -> int:
    """Publish toy params of `seed` as a new version; optionally point production at it."""
    manifest: dict[str, Any] = {"loss": "cross_entropy", "seed": seed,
                                "metrics": {"accuracy": 0.5 + seed / 100}}  # fmt: skip
    version = registry.publish(MODEL, toy_params(seed), manifest).version
    if production:
        registry.set_alias(MODEL, "production", version)
    return version


def corrupt(registry: Registry, version: int) -> None:
    """Flip one byte of a published version's weights (the registry's sha256 check catches it)."""
    path = Path(registry.root) / MODEL / str(version) / "weights.safetensors"
    path.chmod(0o644)  # published files are read-only; the test plays the disk fault
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def random_images(n: int, seed: int = 0) -> np.ndarray:
    """n uint8 images (n, 28, 28)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)

"""Fixtures for pipeline tests: small dataset files with known sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.download import MNIST_FILES, MnistFile


@pytest.fixture
def small_files(tmp_path: Path) -> tuple[Path, tuple[MnistFile, ...]]:
    """Four small files named like the MNIST files, plus specs carrying their real sha256."""
    root = tmp_path / "served"
    root.mkdir()
    rng = np.random.default_rng(0)
    specs = []
    for canonical in MNIST_FILES:
        body = rng.integers(0, 256, size=2048, dtype=np.uint8).tobytes()
        (root / canonical.name).write_bytes(body)
        specs.append(MnistFile(canonical.name, hashlib.sha256(body).hexdigest(), len(body)))
    return root, tuple(specs)

"""Fixtures for pipeline tests: small dataset files with known sha256, a real Dask cluster."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.download import MNIST_FILES, MnistFile
from tests.helpers.dask_cluster import DaskCluster


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


@pytest.fixture
def dask_pair(tmp_path: Path) -> Iterator[tuple[DaskCluster, dict[str, str]]]:
    """A real scheduler and two single-threaded workers "a" and "b" (dask CLI subprocesses)."""
    cluster = DaskCluster(tmp_path)
    try:
        cluster.add_worker("a")
        cluster.add_worker("b")
        yield cluster, cluster.wait_for_workers(2)
    finally:
        cluster.stop()

"""Fixtures for pipeline tests: a local HTTP mirror and small dataset files with known sha256."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.download import MNIST_FILES, MnistFile
from tests.pipeline.dask_cluster import DaskCluster
from tests.pipeline.mirror import MirrorServer
from tests.pipeline.synthetic import write_synthetic_mnist


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
def mirror_factory() -> Iterator[Callable[..., MirrorServer]]:
    """Start mirrors with ``mirror_factory(root)``; all are stopped after the test."""
    started: list[MirrorServer] = []

    def start(root: Path, prefix: str = "mnist") -> MirrorServer:
        server = MirrorServer(root, prefix).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for every flow test of the session (~10 s)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A run of a deployment at its concurrency limit retries after this long (default 30 s).
    os.environ.setdefault("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "1")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def synthetic_mnist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Generated learnable MNIST look-alikes (600 train, 200 test) and their sha256."""
    directory = tmp_path_factory.mktemp("synthetic-mnist")
    return directory, write_synthetic_mnist(directory)


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

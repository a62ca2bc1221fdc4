"""`digits monitor --once`: the key figures of a live server's /metrics as one table."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from registry import Registry
from tests.helpers.digit_data import inverted, publish_trained
from tests.helpers.servers import start

pytestmark = pytest.mark.integration


def monitor(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "monitor", *argv], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_the_table_shows_traffic_errors_drift_and_accuracy(tmp_path: Path):
    registry, images, labels = publish_trained(tmp_path)
    running = start(registry, metrics_port=0, drift_fold_interval_s=0)
    try:
        for i in range(0, 400, 10):
            answer = running.client.predict(inverted(images[i : i + 10]))
            running.client.feedback(answer.request_id, int(labels[i]))
        url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
        stop = threading.Event()

        def traffic() -> None:  # keeps requests flowing while monitor measures its interval
            while not stop.is_set():
                running.client.predict(images[:1])
                time.sleep(0.005)

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            result = monitor("--metrics", url, "--once", "--interval", "1")
        finally:
            stop.set()
            thread.join()
    finally:
        running.close()
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "default version v1" in text
    rate = float(re.search(r"requests\s+([\d.]+)/s", text).group(1))  # type: ignore[union-attr]
    assert rate > 10
    row = next(line for line in text.splitlines() if line.strip().startswith("v1 "))
    assert row.endswith("DRIFT")  # inverted digits
    assert " 40 " in row  # labels received
    test_accuracy = registry.get("digits", 1).manifest["metrics"]["accuracy"]
    assert f"{test_accuracy:.4f}" in row


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path):
    del tmp_path
    result = monitor("--metrics", "http://127.0.0.1:9/metrics", "--once", "--interval", "0.1")
    assert result.returncode == 5  # ExitCode.SERVICE
    assert "cannot read metrics from http://127.0.0.1:9/metrics" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_model_is_called_out(tmp_path: Path):
    running = start(Registry(tmp_path / "empty"), metrics_port=0)
    try:
        url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
        result = monitor("--metrics", url, "--once", "--interval", "0.1")
    finally:
        running.close()
    assert result.returncode == 0, result.stderr
    assert "NO MODEL LOADED" in result.stdout

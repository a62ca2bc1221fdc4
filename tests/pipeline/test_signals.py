"""`digits train` stopped by SIGTERM: no temporary Prefect server survives, no .part is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers.synthetic import write_synthetic_mnist

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, mirror: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`digits train` on synthetic data (written to tmp_path/served) in its own process."""
    digests = write_synthetic_mnist(tmp_path / "served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    command = [sys.executable, "-m", "cli", "train", "--mirror", mirror,
               "--data-dir", str(tmp_path / "cache"), "--registry", str(tmp_path / "registry"),
               "--min-accuracy", "0", *extra]  # fmt: skip
    command += [f"--file-sha256={name}={digest}" for name, digest in digests.items()]
    log = tmp_path / "stderr.log"
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    return process, log


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 150
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"never reached the point to interrupt:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _terminate_and_check(process: subprocess.Popen[bytes], cache: Path) -> None:
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("uvicorn" in " ".join(c.cmdline()) for c in children), "no Prefect server started"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    assert list(cache.rglob("*.part")) == list(cache.rglob(".*.part")) == []


def test_sigterm_during_download_and_during_training(tmp_path: Path, mirror_factory):
    """Both runs side by side (each pays a Prefect server start, ~10-40 s on a busy machine)."""
    downloading, training = tmp_path / "download", tmp_path / "train"
    mirror = mirror_factory(downloading / "served")
    mirror.script("train-images-idx3-ubyte.gz", "stall")  # headers, then nothing
    first, first_log = _start(downloading, mirror.url)
    second, second_log = _start(
        training, (training / "served").as_uri() + "/", "--epochs", "1000", "--lr", "1e-4"
    )
    _wait_for(lambda: any((downloading / "cache").rglob(".*.part")), first, first_log)
    _terminate_and_check(first, downloading / "cache")
    _wait_for(lambda: "epoch 2/1000" in second_log.read_text(), second, second_log)
    _terminate_and_check(second, training / "cache")
    assert not (training / "registry").exists()

"""`digits schedule` served against a real Prefect API: one run at a time, overrides, repeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from registry import Registry
from tests.helpers.synthetic import write_synthetic_mnist

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parents[2]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _serve(tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    from prefect.settings import PREFECT_API_URL

    digests = write_synthetic_mnist(tmp_path / "served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO),
            "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    command = [sys.executable, "-m", "cli", "schedule", "--cron", "0 3 * * *", "--name", name,
               "--mirror", (tmp_path / "served").as_uri() + "/",
               "--data-dir", str(tmp_path / "cache"), "--registry", str(tmp_path / "alt"),
               "--min-accuracy", "0"]  # fmt: skip
    command += [f"--file-sha256={n}={d}" for n, d in digests.items()]
    log = tmp_path / "schedule.log"
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT), log  # fmt: skip


def _wait(predicate: Any, what: str, log: Path, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def test_two_runs_at_once_queue_and_overrides_keep_the_deployment_registry(tmp_path: Path):
    """Both runs override only epochs (whole-object and per-field forms): they train the same
    model into the deployment's registry, one after the other; the second publishes nothing."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    server, log = _serve(tmp_path, "race-test")
    try:
        with get_client(sync_client=True) as client:

            def deployment() -> Any:
                try:
                    return client.read_deployment_by_name("digits-train/race-test")
                except ObjectNotFound:
                    return None

            stored = _wait(deployment, "the deployment", log)
            limit = stored.global_concurrency_limit
            assert limit is not None and limit.limit == 1
            assert stored.concurrency_options.collision_strategy.value == "ENQUEUE"
            assert stored.schedules[0].schedule.timezone == "UTC"
            runs = [
                client.create_flow_run_from_deployment(stored.id, parameters=params)
                for params in ({"settings": {"epochs": 1}}, {"epochs": 1})
            ]

            def finished() -> list[Any] | None:
                current = [client.read_flow_run(run.id) for run in runs]
                return current if all(r.state_type.value in FINAL for r in current) else None

            done = _wait(finished, "both runs to finish", log)
            states = [[s.name for s in client.read_flow_run_states(r.id)] for r in done]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert [r.state_type.value for r in done] == ["COMPLETED", "COMPLETED"], log.read_text()[-3000:]
    first, second = sorted(done, key=lambda r: r.start_time)
    assert first.end_time <= second.start_time  # never both running
    assert any("AwaitingConcurrencySlot" in names for names in states)  # one waited
    assert {first.name, second.name} == {"published-v1-production", "unchanged-same-as-v1"}
    versions = Registry(tmp_path / "alt").list_versions("digits")
    assert [v.version for v in versions] == [1]
    assert versions[0].manifest["training"]["epochs"] == 1
    assert not (tmp_path / "models").exists()  # the default registry was never touched

"""A real dask.distributed cluster from the `dask` CLI: one scheduler and named workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")


class DaskCluster:
    """Scheduler and workers as subprocesses on 127.0.0.1, each in its own process group."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.scheduler_file = work / "scheduler.json"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
        }
        self._scheduler = self._spawn(
            "scheduler",
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.scheduler_file)],
        )  # fmt: skip
        self.address = self._wait_for_address()

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        return subprocess.Popen(
            command, cwd=REPO, env=self._env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _wait_for_address(self, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.scheduler_file.is_file():
                try:
                    return str(json.loads(self.scheduler_file.read_text())["address"])
                except (ValueError, KeyError):
                    pass  # being written
            if self._scheduler.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(
            f"dask scheduler did not start: {(self.work / 'scheduler.log').read_text()}"
        )

    def add_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(
            name,
            [str(DASK), "worker", self.address, "--name", name, "--nthreads", "1",
             "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
        )  # fmt: skip

    def wait_for_workers(self, count: int, timeout_s: float = 90.0) -> dict[str, str]:
        """Worker name -> address once ``count`` workers are connected."""
        from distributed import Client

        with Client(self.address, set_as_default=False, timeout=timeout_s) as client:
            client.wait_for_workers(count, timeout=timeout_s)
            info = client.scheduler_info(n_workers=-1)["workers"]
            return {str(w["name"]): str(address) for address, w in info.items()}

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its nanny (its whole process group): gone for good."""
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait(timeout=10)

    def stop(self) -> None:
        for process in [*self.workers.values(), self._scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers.values(), self._scheduler]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

"""Triton's perf_analyzer against a digits server: the standard tool's figures beside ours.

perf_analyzer ships inside the tritonclient wheel (.venv/bin/perf_analyzer). On a machine with
no GPU it still links libcudart.so.12 (PyPI: nvidia-cuda-runtime-cu12, put on LD_LIBRARY_PATH
here) and Debian's libb64-0d. `command()` says why it cannot run when something is missing.
"""

from __future__ import annotations

import csv
import ctypes.util
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["command", "measure"]


def command() -> tuple[list[str], dict[str, str]] | str:
    """(argv prefix, environment) to run perf_analyzer, or the reason it cannot run."""
    binary = Path(sys.executable).parent / "perf_analyzer"
    found = str(binary) if binary.exists() else shutil.which("perf_analyzer")
    if found is None:
        return "no perf_analyzer (it ships in the tritonclient wheel: pip install tritonclient)"
    if ctypes.util.find_library("b64") is None:
        return "perf_analyzer needs libb64.so.0d (apt-get install libb64-0d)"
    spec = importlib.util.find_spec("nvidia.cuda_runtime")
    if spec is None or not spec.submodule_search_locations:
        return "perf_analyzer needs libcudart.so.12 (pip install nvidia-cuda-runtime-cu12)"
    cudart = Path(next(iter(spec.submodule_search_locations))) / "lib"
    path = os.pathsep.join(p for p in (str(cudart), os.environ.get("LD_LIBRARY_PATH")) if p)
    return [found], {**os.environ, "LD_LIBRARY_PATH": path}


def measure(
    target: str, *, concurrency: int, batch: int = 1, window_ms: int = 1000, trials: int = 5
) -> dict[str, Any]:
    """One perf_analyzer point (`-m digits -i grpc`, UINT8 random images): infer/s, latency.

    Stability is not required (`--stability-percentage 1000`): on a shared machine the windows
    vary more than perf_analyzer's default 10%, and the point is reported, not gated.
    Returns {"failed": reason} when perf_analyzer cannot run or fails.
    """
    found = command()
    if isinstance(found, str):
        return {"failed": found}
    argv, env = found
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "perf.csv"
        args = [
            *argv, "-m", "digits", "-i", "grpc", "-u", target, "-b", str(batch),
            "--concurrency-range", str(concurrency), "--measurement-interval", str(window_ms),
            "--stability-percentage", "1000", "--max-trials", str(trials), "-f", str(report),
        ]  # fmt: skip
        timeout = 30 + trials * window_ms / 1000 * 3
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not report.exists():
            lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
            return {"failed": f"perf_analyzer exit {done.returncode}: {lines[-1]}"}
        with report.open() as rows:
            row = next(csv.DictReader(rows))
    infer_per_s = float(row["Inferences/Second"])
    return {
        "tool": "perf_analyzer (tritonclient wheel), -i grpc, UINT8 random images",
        "concurrency": concurrency,
        "batch": batch,
        "requests_per_s": round(infer_per_s / batch, 1),
        "samples_per_s": round(infer_per_s, 1),
        "p50_ms": float(row["p50 latency"]) / 1e3,
        "p99_ms": float(row["p99 latency"]) / 1e3,
        "server_compute_infer_us": float(row["Server Compute Infer"]),
        "server_queue_us": float(row["Server Queue"]),
    }

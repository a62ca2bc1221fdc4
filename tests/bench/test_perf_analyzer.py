"""Triton's perf_analyzer (-m digits -i grpc) runs against a real digits server.

It calls ServerMetadata, ModelMetadata, ModelConfig and ModelStatistics before and while it
sends ModelInfer, so a missing or misshapen Triton extension stops it at once. Skipped only
when the binary or its libraries are missing (.ci/run installs them).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import Registry
from tests.helpers.servers import Running

pytestmark = pytest.mark.integration
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import triton_perf  # noqa: E402  (bench/triton_perf.py)


def test_perf_analyzer_measures_digits(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    found = triton_perf.command()
    if isinstance(found, str):
        pytest.skip(found)
    running = start_server(registry, enable_v2=True)
    point = triton_perf.measure(running.target, concurrency=2, batch=4, window_ms=1000, trials=10)
    assert "failed" not in point, point
    assert point["samples_per_s"] > 0 and point["p50_ms"] > 0
    # The server saw perf_analyzer's requests and counted them as the tool did.
    (stats,) = running.server.core.statistics.snapshot()
    assert stats.success.count > 0 and stats.inference_count == 4 * stats.success.count
    assert stats.fail.count == 0

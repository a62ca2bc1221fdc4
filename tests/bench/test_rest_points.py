"""bench/rest.py's HTTP points, run with wrk against a real server: the counts wrk reports are
held to the server's own Prometheus counters, and the bodies it times get the right answers.

Skipped where Debian's `wrk` is not installed (.ci/run installs it; tests never do).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from registry import Registry
from tests.helpers.servers import Running, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "bench" / "mlserver")]

import rest  # noqa: E402  (bench/rest.py)
import wrk  # noqa: E402  (bench/mlserver/wrk.py)

if shutil.which("wrk") is None:
    pytest.skip("wrk is not installed (apt-get install wrk)", allow_module_level=True)


def _served(running: Running, code: str) -> int:
    text = running.server.core.metrics.exposition().decode()
    pattern = rf'digits_http_requests_total{{code="{code}",method="ModelInfer"}} (\S+)'
    match = re.search(pattern, text)
    return int(float(match.group(1))) if match else 0


@pytest.mark.parametrize("kind", ["json", "binary"])
def test_wrk_counts_match_the_servers_and_the_bodies_are_answered(
    registry: Registry, start_server: Callable[..., Running], kind: str
) -> None:
    running = start_server(registry, http_port=free_port())
    url = f"{running.http_url}/v2/models/digits/infer"
    body, headers = rest.bodies()[kind]
    answer = rest.probabilities(url, body, headers)  # what the benchmark checks before timing
    pixels = np.random.default_rng(0).integers(0, 256, size=(1, 784), dtype=np.uint8)
    np.testing.assert_allclose(answer, running.client.predict(pixels).probabilities, atol=1e-6)
    result = wrk.point(url, body, headers, duration=1, connections=4)
    assert result["errors"] == 0 and result["requests"] > 20
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    served = _served(running, "200") - 1  # the check call above
    # wrk counts the answers it read; at most one request per connection was cut at the end.
    assert result["requests"] <= served <= result["requests"] + 4


def test_refused_requests_are_counted_as_errors(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry, http_port=free_port())
    url = f"{running.http_url}/v2/models/digits/infer"
    result = wrk.point(url, b"{not json", {"Content-Type": "application/json"}, duration=1,
                       connections=2)  # fmt: skip
    assert result["requests"] > 0 and result["errors"] == result["requests"]
    assert _served(running, "400") >= result["requests"]

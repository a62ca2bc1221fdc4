"""bench/metrics.py runs and compares the two metric implementations on the same observations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_metrics_benchmark_reports_both_implementations(tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    command = [sys.executable, "bench/metrics.py", "--calls", "2000", "--rounds", "2"]
    subprocess.run([*command, "--out", str(out)], cwd=REPO, check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert set(result["us_per_request"]) == {"prometheus_client", "hot_metrics"}
    assert all(len(values) == 2 for values in result["rounds_us"].values())
    assert result["speedup"] > 0 and all(v > 0 for v in result["us_per_request"].values())

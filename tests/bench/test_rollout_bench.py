"""bench/rollout.py --quick end to end: it runs, counts every request and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quick_rollout_benchmark_reports_both_comparisons(tmp_path: Path) -> None:
    out = tmp_path / "rollout.json"
    subprocess.run(
        [sys.executable, "bench/rollout.py", "--quick", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    report = json.loads(out.read_text())
    swap, shadow = report["swap"], report["shadow"]
    assert swap["promotions"] == 2 and swap["requests"] > 100
    assert all(s is not None for s in swap["seconds_to_first_answer_of_new_version"])
    assert swap["failed_requests"] == shadow["failed_requests"] == 0
    assert swap["swap_p99_vs_steady"] > 0 and shadow["shadow_p99_vs_none"] > 0
    assert shadow["shadow_rows_compared"] > 0  # the shadow really ran
    assert report["targets"]["failed_requests"] == {"target": 0, "measured": 0}

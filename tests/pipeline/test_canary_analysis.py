"""Canary analysis: Prometheus text -> per-version windows, PromQL-style p99, and the guards."""

from __future__ import annotations

import math

import pytest

from pipeline.canary import Guards, check_guards
from pipeline.canary_metrics import Snapshot, metrics_url, quantile
from service.observability.metrics import ServiceMetrics


def _snapshot(*replicas: ServiceMetrics) -> Snapshot:
    snapshot = Snapshot()
    for metrics in replicas:
        snapshot.add_text(metrics.exposition().decode())
    return snapshot


def _serve(metrics: ServiceMetrics, version: int, n: int, seconds: float, errors: int = 0) -> None:
    for i in range(n):
        metrics.observe_version(version, i >= errors, seconds)


def test_quantile_interpolates_like_histogram_quantile() -> None:
    # 100 observations: 50 in (0, 1], 40 in (1, 2], 10 in (2, 4].
    buckets = {1.0: 50.0, 2.0: 90.0, 4.0: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == 1.0
    assert quantile(0.7, buckets) == pytest.approx(1.5)
    assert quantile(0.99, buckets) == pytest.approx(3.8)
    assert quantile(0.99, {1.0: 0.0, 2.0: 0.0, math.inf: 5.0}) == 2.0  # in +Inf: highest bound
    assert math.isnan(quantile(0.99, {1.0: 0.0, math.inf: 0.0}))


def test_snapshots_sum_replicas_and_subtract_to_a_window() -> None:
    one, two = ServiceMetrics(), ServiceMetrics()
    _serve(one, 1, 10, 0.0003)
    before = _snapshot(one, two)
    _serve(one, 1, 30, 0.0003)
    _serve(two, 1, 50, 0.0003)
    _serve(two, 7, 20, 0.003, errors=2)
    two.observe_shadow(7, rows=40, agreed=30, seconds=0.001)
    window = _snapshot(one, two).since(before)
    assert (window.of(1).ok, window.of(1).errors) == (80, 0)
    assert (window.of(7).requests, window.of(7).error_rate) == (20, 0.1)
    assert window.of(7).agreement == 0.75
    assert 0.0025 < window.of(7).p99() <= 0.005 and 0.00025 < window.of(1).p99() <= 0.0005
    restarted = _snapshot(ServiceMetrics())  # counters back at zero: counted from zero
    assert restarted.since(_snapshot(one, two)).of(1).requests == 0


def _window(canary_ms: float, errors: int = 0, agreed: int = 95, canary_n: int = 50) -> Snapshot:
    metrics = ServiceMetrics()
    _serve(metrics, 1, 200, 0.0004)
    _serve(metrics, 2, canary_n, canary_ms / 1000, errors)
    metrics.observe_shadow(2, rows=100, agreed=agreed, seconds=0.001)
    return _snapshot(metrics)


def test_guards_pass_a_healthy_canary() -> None:
    report = check_guards(_window(0.4), canary=2, production=1, percent=10, guards=Guards())
    assert report.ok, report.failures
    assert report.agreement == 0.95 and report.p99_ratio == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("window", "failure"),
    [
        (_window(0.4, errors=2), "error rate 0.0400 > 0.01"),
        (_window(4.0), "p99 ratio"),
        (_window(0.4, agreed=10), "agreement 0.100 < 0.95"),
        (_window(0.4, canary_n=5), "only 5 canary requests"),
    ],
)
def test_each_guard_fails_on_its_own(window: Snapshot, failure: str) -> None:
    report = check_guards(window, canary=2, production=1, percent=10, guards=Guards())
    assert not report.ok and len(report.failures) == 1
    assert failure in report.failures[0]


def test_metrics_url_adds_the_path_and_rejects_other_schemes() -> None:
    assert metrics_url("127.0.0.1:9100") == "http://127.0.0.1:9100/metrics"
    assert metrics_url("http://h:1/") == "http://h:1/metrics"
    assert metrics_url("https://h:1/custom") == "https://h:1/custom"
    with pytest.raises(ValueError, match="not a metrics URL"):
        metrics_url("ftp://h/metrics")

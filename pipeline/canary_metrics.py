"""Per-version serving statistics read from the replicas' Prometheus /metrics endpoints.

A `Snapshot` sums, over every replica, the per-version series the server exports
(service/observability/metrics.py): ``digits_version_requests_total{version,outcome}``, the
``digits_version_latency_seconds`` histogram and the shadow's ``digits_shadow_rows_total
{version,agreement}``. Two snapshots taken an interval apart give the counts of that interval
(`Snapshot.since`), from which a quantile is estimated the way PromQL's ``histogram_quantile``
does (linear interpolation inside the bucket holding the rank; prometheus.io/docs/prometheus/
latest/querying/functions/#histogram_quantile).
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Snapshot", "VersionStats", "metrics_url", "quantile", "scrape"]


@dataclass
class VersionStats:
    """Counts of one version: answered requests, failed ones, latency buckets, shadow rows."""

    ok: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound (s) -> cumulative
    agree: float = 0.0  # rows this version, as the shadow, labelled like the answer
    disagree: float = 0.0

    @property
    def requests(self) -> float:
        return self.ok + self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def compared(self) -> float:
        return self.agree + self.disagree

    @property
    def agreement(self) -> float:
        """Share of shadow rows whose top-1 label matched the served answer (nan if none)."""
        return self.agree / self.compared if self.compared else math.nan

    def p99(self) -> float:
        return quantile(0.99, self.buckets)


def _delta(after: float, before: float) -> float:
    # A counter that went down belongs to a restarted replica: count it from zero.
    return after - before if after >= before else after


@dataclass
class Snapshot:
    """Per-version statistics summed over replicas, keyed by registry version."""

    versions: dict[int, VersionStats] = field(default_factory=dict)

    def of(self, version: int) -> VersionStats:
        return self.versions.get(version, VersionStats())

    def since(self, earlier: Snapshot) -> Snapshot:
        """What happened between ``earlier`` and this snapshot."""
        out = Snapshot()
        for version, now in self.versions.items():
            then = earlier.of(version)
            out.versions[version] = VersionStats(
                _delta(now.ok, then.ok),
                _delta(now.errors, then.errors),
                {le: _delta(n, then.buckets.get(le, 0.0)) for le, n in now.buckets.items()},
                _delta(now.agree, then.agree),
                _delta(now.disagree, then.disagree),
            )
        return out

    def add_text(self, text: str) -> None:
        """Add one replica's exposition (Prometheus text format) to the sums."""
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                version = sample.labels.get("version", "")
                if not version.isdigit():
                    continue
                stats = self.versions.setdefault(int(version), VersionStats())
                labels, value = sample.labels, float(sample.value)
                if sample.name == "digits_version_requests_total":
                    if labels.get("outcome") == "ok":
                        stats.ok += value
                    else:
                        stats.errors += value
                elif sample.name == "digits_version_latency_seconds_bucket":
                    le = float(labels["le"])
                    stats.buckets[le] = stats.buckets.get(le, 0.0) + value
                elif sample.name == "digits_shadow_rows_total":
                    if labels.get("agreement") == "agree":
                        stats.agree += value
                    else:
                        stats.disagree += value


def quantile(q: float, buckets: dict[float, float]) -> float:
    """The ``q`` quantile (0..1) of a cumulative histogram ``{upper bound: count}``; nan if empty.

    As PromQL's histogram_quantile: interpolate linearly inside the bucket that holds rank
    q * count (from 0 for the first bucket); a rank in the +Inf bucket gives the highest finite
    bound.
    """
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def metrics_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/metrics``; a URL with a path is kept."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a metrics URL: {url!r} (e.g. http://127.0.0.1:9100/metrics)")
    path = parts.path if parts.path not in ("", "/") else "/metrics"
    return f"{parts.scheme}://{parts.netloc}{path}"


def scrape(urls: Iterable[str], timeout_s: float = 5.0) -> Snapshot:
    """Fetch every replica's /metrics and sum them (OSError when one cannot be read)."""
    snapshot = Snapshot()
    for url in urls:
        with urllib.request.urlopen(metrics_url(url), timeout=timeout_s) as response:
            snapshot.add_text(response.read().decode())
    return snapshot

"""DriftMonitor: live-traffic profiles per model version, compared with the training reference.

It runs in the monitor process (service/observability/monitor_worker.py), which `observe`s the
answers the server handed over, in batches: appends to a bounded deque (under a lock held for
the append only). A fold (every `fold_interval_s` on a background thread, and before
each scrape) drains the deque, computes the per-image statistics of
core.profile in one vectorised pass and adds their bin counts to two things per version:

- cumulative counters (predicted classes, the top-1 confidence histogram) for Prometheus;
- a sliding window of the last ~`window_images` images, kept as per-fold bin counts, whose
  histograms are compared with the manifest's reference profile by the population stability
  index (core.profile.psi) when the window holds at least `min_images`.

When the deque is full (folds cannot keep up), further answers are not profiled and counted in
digits_drift_dropped_total (with those the server could not hand over: `upstream_dropped`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from core.profile import STATISTICS, bin_counts, image_statistics, psi

__all__ = ["DriftMonitor"]

_Item = tuple[Any, NDArray[Any], NDArray[np.float32]]  # (ServedModel, pixels, probabilities)

logger = logging.getLogger("service.observability.drift")


@dataclass
class _Version:
    """What the monitor knows of one model version (guarded by DriftMonitor._lock)."""

    reference: dict[str, list[float]] | None
    totals: dict[str, NDArray[np.int64]]  # cumulative bin counts since start
    confidence_sum: float = 0.0
    window: deque[tuple[int, dict[str, NDArray[np.int64]]]] = field(default_factory=deque)
    window_images: int = 0


class DriftMonitor:
    """Folds observed predictions into per-version profiles; a prometheus_client collector."""

    def __init__(
        self,
        *,
        window_images: int = 5000,
        min_images: int = 500,
        pending_limit: int = 65536,
        fold_interval_s: float = 1.0,
    ) -> None:
        self.window_images = window_images
        self.min_images = min_images
        self.pending_limit = pending_limit
        self.fold_interval_s = fold_interval_s
        self._pending: deque[_Item] = deque()
        self._pending_images = 0  # in _pending
        self._queue_lock = threading.Lock()  # _pending, _pending_images, _dropped: held briefly
        self._dropped = 0
        self.upstream_dropped = 0  # answers the server could not send here (monitor_process)
        self._lock = threading.Lock()  # folds and scrapes (a fold holds it for milliseconds)
        self._versions: dict[int, _Version] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(
        self,
        model: Any,
        pixels: NDArray[Any],
        probabilities: NDArray[np.float32],
        answers: int = 1,
    ) -> None:
        """Queue answers for the next fold (model: with .version and .manifest).

        pixels (n, 784) uint8 or float in [0, 1]; probabilities (n, 10); `answers`: how many
        requests they are (counted when dropped). The arrays are kept by reference until the
        fold: callers must not modify them afterwards. Dropped when more than `pending_limit`
        images would wait.
        """
        with self._queue_lock:
            if self._pending_images + len(pixels) > self.pending_limit:
                self._dropped += answers
                return
            self._pending_images += len(pixels)
            self._pending.append((model, pixels, probabilities))

    def start(self) -> None:
        """Fold every fold_interval_s on a daemon thread (0 = only at scrape time)."""
        if self._thread is None and self.fold_interval_s > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="drift-fold", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.fold_interval_s):
            try:
                self.fold()
            except Exception:  # a bad fold must not end monitoring
                logger.exception("drift fold failed")

    def fold(self) -> None:
        """Drain what observe queued and add it to the per-version profiles."""
        with self._lock:
            drained: dict[int, list[_Item]] = {}
            with self._queue_lock:
                pending = list(self._pending)
                self._pending.clear()
                self._pending_images = 0
            for item in pending:
                drained.setdefault(int(item[0].version), []).append(item)
            for version, items in drained.items():
                self._add(version, items)

    def _add(self, version: int, items: list[_Item]) -> None:
        pixels = [_as_float(p) for _, p, _ in items] if _mixed(items) else [p for _, p, _ in items]
        x = pixels[0] if len(pixels) == 1 else np.concatenate(pixels)
        probabilities = np.concatenate([p for _, _, p in items])
        stats = image_statistics(x, probabilities)
        counts = bin_counts(stats)
        state = self._versions.get(version)
        if state is None:
            reference = _reference(items[0][0].manifest)
            totals = {name: np.zeros(len(edges), np.int64) for name, edges in STATISTICS.items()}
            state = self._versions[version] = _Version(reference, totals)
        for name, bins in counts.items():
            state.totals[name] += bins
        state.confidence_sum += float(stats["confidence"].sum())
        state.window.append((len(x), counts))
        state.window_images += len(x)
        # Slide: drop the oldest folds while the rest still fill the window.
        while state.window and state.window_images - state.window[0][0] >= self.window_images:
            state.window_images -= state.window.popleft()[0]

    def psi(self, version: int) -> dict[str, float]:
        """PSI per statistic of `version`'s window against its reference ({} when unavailable)."""
        with self._lock:
            state = self._versions.get(version)
            if state is None:
                return {}
            return _scores(state, self.min_images)

    def collect(self) -> Iterator[Metric]:
        self.fold()
        classes = CounterMetricFamily(
            "digits_predicted_class", "Images answered, by model version and predicted class",
            labels=["version", "class"],
        )  # fmt: skip
        confidence = HistogramMetricFamily(
            "digits_confidence", "Top-1 probability of each answered image, by model version",
            labels=["version"],
        )  # fmt: skip
        drift = GaugeMetricFamily(
            "digits_drift_psi",
            "Population stability index of a statistic over the sliding window vs the training "
            "reference (> 0.2: significant shift)",
            labels=["version", "statistic"],
        )
        window = GaugeMetricFamily(
            "digits_drift_window_images", "Images in the drift window, by model version",
            labels=["version"],
        )  # fmt: skip
        with self._lock:
            for version, state in sorted(self._versions.items()):
                label = str(version)
                for cls, count in enumerate(state.totals["class"]):
                    classes.add_metric([label, str(cls)], float(count))
                confidence.add_metric([label], _buckets(state.totals["confidence"]),
                                      state.confidence_sum)  # fmt: skip
                window.add_metric([label], float(state.window_images))
                for statistic, value in _scores(state, self.min_images).items():
                    drift.add_metric([label, statistic], value)
            with self._queue_lock:
                dropped = self._dropped + self.upstream_dropped
        yield classes
        yield confidence
        yield drift
        yield window
        yield CounterMetricFamily(
            "digits_drift_dropped", "Answers not profiled because the fold queue was full",
            value=float(dropped),
        )  # fmt: skip


def _scores(state: _Version, min_images: int) -> dict[str, float]:
    if state.reference is None or state.window_images < min_images:
        return {}
    window = {
        name: np.sum([counts[name] for _, counts in state.window], axis=0) for name in STATISTICS
    }
    return {
        name: psi(expected, window[name])
        for name, expected in state.reference.items()
        if len(expected) == len(window[name])
    }


def _buckets(counts: NDArray[np.int64]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs: bin i of the confidence edges ends at edges[i + 1]."""
    edges = STATISTICS["confidence"]
    les = [repr(float(e)) for e in edges[1:]] + ["+Inf"]
    return list(zip(les, np.cumsum(counts).astype(float).tolist(), strict=True))


def _reference(manifest: Mapping[str, Any]) -> dict[str, list[float]] | None:
    """Statistic -> reference fractions from a manifest's "profile", if it has one that matches."""
    stats = (manifest.get("profile") or {}).get("statistics")
    if not isinstance(stats, dict):
        return None
    reference = {}
    for name, edges in STATISTICS.items():
        entry = stats.get(name)
        if isinstance(entry, dict) and list(entry.get("edges", ())) == list(edges):
            reference[name] = [float(f) for f in entry["fractions"]]
    return reference or None


def _mixed(items: list[_Item]) -> bool:
    return len({p.dtype for _, p, _ in items}) > 1


def _as_float(pixels: NDArray[Any]) -> NDArray[np.float32]:
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    return pixels.astype(np.float32, copy=False)

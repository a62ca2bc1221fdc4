"""Cumulative inference statistics per model version, in the shape of Triton's statistics
extension (what `perf_analyzer` and `model_analyzer` read through ModelStatistics).

Counted in the serving core, so every protocol's requests are in them: a request is a success
or a failure once it reached the model (after input validation), with its time in the core; an
execution is one forward pass, which serves several requests when batching is on. Source of the
fields' meaning: https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_statistics.md
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.serving.model import Predictor

__all__ = ["Duration", "InferenceStatistics", "VersionStatistics"]

Forward = Callable[[NDArray[Any]], NDArray[np.float32]]


@dataclass(frozen=True)
class Duration:
    """How many, and their total time in nanoseconds."""

    count: int = 0
    ns: int = 0

    def plus(self, ns: int) -> Duration:
        return Duration(self.count + 1, self.ns + ns)


@dataclass(frozen=True)
class VersionStatistics:
    """One model version's totals since the server started."""

    name: str
    version: int
    last_inference_ms: int = 0  # Unix time in ms of the last answered request (0 = none)
    inference_count: int = 0  # images (rows) answered
    execution_count: int = 0  # forward passes
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)  # answered requests' wait for their pass
    compute_infer: Duration = field(default_factory=Duration)


class _Running:
    """Mutable totals of one version, updated under InferenceStatistics' lock (a frozen copy per
    update cost ~4 us a request, measured; these are plain integer additions)."""

    __slots__ = ("counts", "last_inference_ms")

    # counts: inference, execution, then (count, ns) of success, fail, queue, compute_infer
    def __init__(self) -> None:
        self.counts = [0] * 10
        self.last_inference_ms = 0

    def frozen(self, name: str, version: int) -> VersionStatistics:
        c = self.counts
        return VersionStatistics(
            name, version, self.last_inference_ms, c[0], c[1],
            Duration(c[2], c[3]), Duration(c[4], c[5]), Duration(c[6], c[7]), Duration(c[8], c[9]),
        )  # fmt: skip


class InferenceStatistics:
    """Thread-safe totals per (model, version): forward passes may run in the batcher's pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, int], _Running] = {}
        self._forwards: dict[tuple[str, int], tuple[Predictor, Forward]] = {}

    def timed(self, name: str, version: int, predictor: Predictor) -> Forward:
        """predictor.predict_proba, counting and timing each call as an execution of
        (name, version).

        The same function object comes back for the same predictor, so the batcher still groups
        concurrent requests of one model into one pass. Called on the event loop only.
        """
        cached = self._forwards.get((name, version))
        if cached is not None and cached[0] is predictor:
            return cached[1]
        forward = predictor.predict_proba
        totals = self._running(name, version)

        def timed(x: NDArray[Any]) -> NDArray[np.float32]:
            start = time.perf_counter_ns()
            result = forward(x)
            elapsed = time.perf_counter_ns() - start
            with self._lock:
                counts = totals.counts
                counts[1] += 1
                counts[8] += 1
                counts[9] += elapsed
            return result

        self._forwards[name, version] = (predictor, timed)
        return timed

    def request(self, name: str, version: int, rows: int, ns: int, queued_ns: int | None) -> None:
        """Record one request that reached the model, `ns` long: answered after `queued_ns`
        in the batcher's queue, or failed (queued_ns None)."""
        totals = self._running(name, version)
        with self._lock:
            counts = totals.counts
            if queued_ns is None:
                counts[4] += 1
                counts[5] += ns
                return
            counts[0] += rows
            counts[2] += 1
            counts[3] += ns
            counts[6] += 1
            counts[7] += queued_ns
            totals.last_inference_ms = int(time.time() * 1e3)

    def snapshot(self) -> list[VersionStatistics]:
        """Every version's totals, by (name, version)."""
        with self._lock:
            return [self._totals[key].frozen(*key) for key in sorted(self._totals)]

    def _running(self, name: str, version: int) -> _Running:
        totals = self._totals.get((name, version))
        if totals is None:
            with self._lock:
                totals = self._totals.setdefault((name, version), _Running())
        return totals

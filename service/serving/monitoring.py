"""Monitoring: the drift monitor, the feedback join and the prediction log of one server.

`ServingCore` queues every answer for the drift monitor; the wire adapters report each request's
end here (`answered` / `failed`, for feedback and the sampled log) and pass Feedback on
(`judge`). Each part is optional (settings), computes its metrics at scrape time, and costs the
request path a few deque or dict operations (docs/monitoring.md).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from registry.storage import is_object_store
from service.observability.drift import DriftMonitor
from service.observability.feedback import Judgement, LiveAccuracy
from service.observability.log_store import S3LogStore
from service.observability.metrics import ServiceMetrics
from service.observability.prediction_log import PredictionLog
from service.serving.errors import NotFound
from service.settings import ServiceSettings

__all__ = ["Monitoring"]


def _spool(cache_dir: Path, url: str) -> Path:
    """The local directory of an s3:// log's current file: one per destination."""
    return cache_dir / "prediction-log" / hashlib.sha256(url.encode()).hexdigest()[:16]


class Monitoring:
    """Optional drift monitor, feedback join and prediction log; their collectors registered."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        *,
        drift: DriftMonitor | None = None,
        feedback: LiveAccuracy | None = None,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.drift = drift
        self.feedback = feedback
        self.prediction_log = prediction_log
        for collector in (drift, feedback, prediction_log):
            if collector is not None:  # computed at scrape time, off the request path
                metrics.registry.register(collector)

    @classmethod
    def from_settings(cls, settings: ServiceSettings, metrics: ServiceMetrics) -> Monitoring:
        """What the settings ask for: drift, feedback_window > 0, prediction_log."""
        drift = feedback = log = None
        if settings.drift:
            drift = DriftMonitor(
                window_images=settings.drift_window, min_images=settings.drift_min_images,
                fold_interval_s=settings.drift_fold_interval_s,
            )  # fmt: skip
        if settings.feedback_window > 0:
            feedback = LiveAccuracy(settings.feedback_window)
        if settings.prediction_log is not None:
            destination = settings.prediction_log
            store = S3LogStore(str(destination)) if is_object_store(destination) else None
            log = PredictionLog(
                _spool(settings.cache_dir, str(destination)) if store else Path(destination),
                store=store, sample_rate=settings.log_sample_rate,
                queue_size=settings.log_queue_size, max_bytes=settings.log_max_bytes,
                max_age_s=settings.log_max_age_s, flush_interval_s=settings.log_flush_interval_s,
            )  # fmt: skip
        return cls(metrics, drift=drift, feedback=feedback, prediction_log=log)

    def start(self) -> None:
        """Create the log directory (OSError if impossible) and start the background threads."""
        if self.prediction_log is not None:
            self.prediction_log.start()
        if self.drift is not None:
            self.drift.start()

    def stop(self) -> None:
        """Fold the last answers; write the log's last records and close its file."""
        if self.drift is not None:
            self.drift.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()

    def answered(
        self, method: str, request_id: str, start: float, pixels: NDArray[Any], answer: Any
    ) -> None:
        """After a successful prediction (answer: a ServingCore Answer): remember it for
        feedback, maybe log it. start: time.perf_counter() when the request arrived."""
        if self.feedback is not None:
            self.feedback.remember(request_id, answer.model, answer.labels)
        log = self.prediction_log
        if log is not None and log.sampled():
            seconds = time.perf_counter() - start
            log.submit(time.time(), request_id, method, answer.model.version, seconds, "OK", None,
                       pixels, answer.probabilities)  # fmt: skip

    def failed(
        self,
        method: str,
        request_id: str,
        start: float,
        pixels: NDArray[Any] | None,
        status: str,
        error: str,
    ) -> None:
        """After a failed prediction: maybe log it, with its status code name and details."""
        log = self.prediction_log
        if log is not None and log.sampled():
            log.submit(time.time(), request_id, method, None, time.perf_counter() - start,
                       status, error, pixels, None)  # fmt: skip

    def judge(self, request_id: str, label: int, index: int = 0) -> Judgement:
        """Ground truth for an earlier answer: counted for live accuracy and logged.

        Raises NotFound (unknown or forgotten id, or feedback off) / InvalidInput (bad label).
        """
        if self.feedback is None:
            raise NotFound("feedback is off on this server (feedback_window=0)")
        judgement = self.feedback.judge(request_id, label, index)
        if self.prediction_log is not None:
            self.prediction_log.submit_feedback(time.time(), request_id, index, label,
                                                judgement.version, judgement.predicted)  # fmt: skip
        return judgement

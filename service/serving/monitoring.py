"""Monitoring: the drift monitor, the feedback join and the prediction log of one server.

The wire adapters report each request's end here (`answered` / `failed`) and pass Feedback on
(`judge`). Feedback is joined in this process (a dict of recent ids); drift profiling and the
prediction log run in a monitor process (service/observability/monitor_process.py), so the
request path only queues each answer (packed in bulk) and never shares the interpreter lock
with their work (docs/monitoring.md). Each part is optional (settings).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from registry.storage import is_object_store
from service.observability import monitor_wire as wire
from service.observability.feedback import Judgement, LiveAccuracy
from service.observability.metrics import ServiceMetrics
from service.observability.monitor_process import MonitorProcess
from service.serving.errors import NotFound
from service.settings import ServiceSettings

__all__ = ["Monitoring"]


def _spool(cache_dir: Path, url: str) -> Path:
    """The local directory of an s3:// log's current file: one per destination."""
    return cache_dir / "prediction-log" / hashlib.sha256(url.encode()).hexdigest()[:16]


class Monitoring:
    """Optional feedback join and monitor process (drift, prediction log); collectors registered."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        *,
        feedback: LiveAccuracy | None = None,
        process: MonitorProcess | None = None,
        log_directory: Path | None = None,
    ) -> None:
        self.feedback = feedback
        self.process = process
        self.log_directory = log_directory  # created (or refused) at start
        for collector in (feedback, process):
            if collector is not None:  # computed at scrape time, off the request path
                metrics.registry.register(collector)

    @classmethod
    def from_settings(cls, settings: ServiceSettings, metrics: ServiceMetrics) -> Monitoring:
        """What the settings ask for: drift, feedback_window > 0, prediction_log.

        Raises InvalidNameError for a malformed s3:// log destination.
        """
        feedback = LiveAccuracy(settings.feedback_window) if settings.feedback_window > 0 else None
        config: dict[str, Any] = {
            "drift": None, "log": None, "priority": settings.monitor_priority,
            "logging": {"format": settings.log_format, "level": settings.log_level},
        }  # fmt: skip
        if settings.drift:
            config["drift"] = {
                "window_images": settings.drift_window, "min_images": settings.drift_min_images,
                "fold_interval_s": settings.drift_fold_interval_s,
            }  # fmt: skip
        directory = None
        if (destination := settings.prediction_log) is not None:
            store = None
            if is_object_store(destination):
                # Only its URL checked here (boto3 imported for s3:// logs alone); the monitor
                # process makes the client.
                from service.observability.log_store import S3LogStore

                store = S3LogStore.location_of(str(destination))
            directory = _spool(settings.cache_dir, str(destination)) if store else Path(destination)
            config["log"] = {
                "directory": str(directory), "store": store,
                "queue_size": settings.log_queue_size, "max_bytes": settings.log_max_bytes,
                "max_age_s": settings.log_max_age_s,
                "flush_interval_s": settings.log_flush_interval_s,
            }  # fmt: skip
        process = None
        if config["drift"] or config["log"]:
            rate = settings.log_sample_rate if config["log"] else None
            process = MonitorProcess(config, drift=settings.drift, log_sample_rate=rate)
        return cls(metrics, feedback=feedback, process=process, log_directory=directory)

    def start(self) -> None:
        """Create the log directory (OSError naming it if impossible), start the monitor process."""
        if self.log_directory is not None:
            try:
                self.log_directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OSError(
                    f"prediction log directory {self.log_directory}: {err.strerror}"
                ) from None
        if self.process is not None:
            self.process.start()

    def stop(self) -> None:
        """Fold the last answers; write the log's last records and close its file."""
        if self.process is not None:
            self.process.stop()

    def sync(self, rotate: bool = False) -> None:
        """Wait until every answer so far is folded and logged (rotate: log file closed and,
        for s3://, uploaded). For tests and tools; a scrape does the same without rotating."""
        if self.process is not None:
            self.process.sync(wire.ROTATE if rotate else wire.WRITE, timeout_s=60.0)

    def answered(
        self, method: str, request_id: str, start: float, pixels: NDArray[Any], answer: Any
    ) -> None:
        """After a successful prediction (answer: a ServingCore Answer): remember it for
        feedback, profile it for drift, maybe log it. start: time.perf_counter() when the
        request arrived; pixels: what was predicted (the arrays must not change afterwards)."""
        if self.feedback is not None:
            self.feedback.remember(request_id, answer.model, answer.labels)
        if (process := self.process) is not None:
            process.prediction(answer.model, request_id, method, time.perf_counter() - start,
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
        if (process := self.process) is not None and process.sampled():
            process.failure(request_id, method, time.perf_counter() - start, status, error,
                            pixels)  # fmt: skip

    def judge(self, request_id: str, label: int, index: int = 0) -> Judgement:
        """Ground truth for an earlier answer: counted for live accuracy and logged.

        Raises NotFound (unknown or forgotten id, or feedback off) / InvalidInput (bad label).
        """
        if self.feedback is None:
            raise NotFound("feedback is off on this server (feedback_window=0)")
        judgement = self.feedback.judge(request_id, label, index)
        if self.process is not None:
            self.process.feedback(request_id, index, label, judgement.version,
                                  judgement.predicted)  # fmt: skip
        return judgement

"""ServingCore: the transport-free model-serving core shared by every wire adapter.

digits.v1 (service/rpc/digits_v1.py) and the Open Inference Protocol adapter (service/rpc/v2.py)
both turn their messages into pixel arrays, await `ServingCore.predict_async` (on the grpc.aio
server's event loop) and turn the `Answer` back into messages. Validation limits, model
resolution, hot reload, batching and metrics live here once, and so do the monitoring hooks:
every answer is queued for the drift monitor and remembered for feedback; adapters report each
request's end (`answered` / `failed`) for the sampled prediction log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from registry import Registry
from service.observability.drift import DriftMonitor
from service.observability.feedback import Judgement, LiveAccuracy
from service.observability.metrics import ServiceMetrics
from service.observability.prediction_log import PredictionLog
from service.serving.batching import LoopBatcher
from service.serving.errors import NotFound
from service.serving.served import ServedModel, ServedModels
from service.serving.validation import check_pixels, pixels_from_bytes
from service.settings import ServiceSettings

__all__ = ["Answer", "ServingCore"]


@dataclass(frozen=True)
class Answer:
    """Probabilities (n, 10) float32 and labels (n,) int64, with the model that computed them."""

    model: ServedModel
    probabilities: NDArray[np.float32]
    labels: NDArray[np.int64]


class ServingCore:
    """Owns the model repository, the event-loop batcher and the metrics of one server."""

    def __init__(
        self,
        repository: ServedModels,
        metrics: ServiceMetrics,
        *,
        max_images: int = 8192,
        loop_batcher: LoopBatcher | None = None,
        drift: DriftMonitor | None = None,
        feedback: LiveAccuracy | None = None,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.models = repository
        self.loop_batcher = loop_batcher or LoopBatcher(enabled=False)
        self.metrics = metrics
        self.max_images = max_images
        self.drift = drift
        self.feedback = feedback
        self.prediction_log = prediction_log
        for collector in (drift, feedback, prediction_log):
            if collector is not None:  # computed at scrape time, off the request path
                metrics.registry.register(collector)

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, metrics: ServiceMetrics | None = None
    ) -> ServingCore:
        metrics = metrics or ServiceMetrics()
        repository = ServedModels(
            Registry(settings.registry),
            settings.model_name,
            alias=settings.alias,
            poll_interval_s=settings.poll_interval_s,
            cache_size=settings.cache_size,
            metrics=metrics,
        )
        loop_batcher = LoopBatcher(
            max_batch_rows=settings.max_batch,
            max_delay_us=settings.max_delay_us,
            enabled=settings.batching,
            observe_batch=metrics.observe_batch,
            observe_queue_delay=metrics.observe_queue_delay,
        )
        return cls(
            repository, metrics, max_images=settings.max_images, loop_batcher=loop_batcher,
            **_monitoring(settings),
        )  # fmt: skip

    @property
    def ready(self) -> bool:
        """True once a default model is loaded."""
        return self.models.current is not None

    def start(self) -> None:
        """Load the default model (if any), begin polling the registry, start the monitors."""
        if self.prediction_log is not None:
            self.prediction_log.start()
        if self.drift is not None:
            self.drift.start()
        self.models.start()

    def stop(self) -> None:
        """Stop polling and batching; fold the last answers and write the log's last records."""
        self.models.stop()
        self.loop_batcher.close()
        if self.drift is not None:
            self.drift.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()

    def decode(
        self, data: bytes, dtype: str, shape: Sequence[int]
    ) -> NDArray[np.uint8] | NDArray[np.float32]:
        """Packed bytes -> checked pixels (n, 784); InvalidInput on any problem."""
        return pixels_from_bytes(data, dtype, shape, max_rows=self.max_images)

    def check(self, array: NDArray[Any]) -> NDArray[Any]:
        """An already-built array -> checked pixels (n, 784); InvalidInput on any problem."""
        return check_pixels(array, max_rows=self.max_images)

    def model(self, version: int | None = None, alias: str | None = None) -> ServedModel:
        """The model a request asks for (NotFound / ModelNotReady / ModelUnusable otherwise)."""
        return self.models.get(version, alias)

    async def predict_async(
        self,
        pixels: NDArray[Any],
        *,
        version: int | None = None,
        alias: str | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Probabilities and labels from the requested model version, via the loop batcher.

        A pinned version that is not in memory yet is loaded (and verified) inline, once.
        """
        served = self.models.get(version, alias)
        probabilities = await self.loop_batcher.run(served.predictor.predict_proba, pixels, timeout)
        if self.drift is not None:
            self.drift.observe(served, pixels, probabilities)
        return Answer(served, probabilities, probabilities.argmax(axis=1).astype(np.int64))

    def answered(
        self, method: str, request_id: str, start: float, pixels: NDArray[Any], answer: Answer
    ) -> None:
        """After a successful prediction: remember it for feedback, maybe log it.

        start: time.perf_counter() when the request arrived.
        """
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


def _monitoring(settings: ServiceSettings) -> dict[str, Any]:
    """The drift monitor, feedback join and prediction log the settings ask for."""
    drift = feedback = log = None
    if settings.drift:
        drift = DriftMonitor(
            window_images=settings.drift_window, min_images=settings.drift_min_images,
            fold_interval_s=settings.drift_fold_interval_s,
        )  # fmt: skip
    if settings.feedback_window > 0:
        feedback = LiveAccuracy(settings.feedback_window)
    if settings.prediction_log is not None:
        log = PredictionLog(
            settings.prediction_log, sample_rate=settings.log_sample_rate,
            queue_size=settings.log_queue_size, max_bytes=settings.log_max_bytes,
            max_age_s=settings.log_max_age_s, flush_interval_s=settings.log_flush_interval_s,
        )  # fmt: skip
    return {"drift": drift, "feedback": feedback, "prediction_log": log}

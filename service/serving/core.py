"""ServingCore: the transport-free model-serving core shared by every wire adapter.

digits.v1 (service/rpc/digits_v1.py), the Open Inference Protocol adapters (gRPC:
service/rpc/v2.py; REST: service/http/v2.py) and the drawing page's endpoint (service/http/draw.py)
all turn their messages into pixel arrays, await `ServingCore.predict_async` (on the one event
loop the grpc.aio server and uvicorn share) and turn the `Answer` back into messages.
Validation limits, model resolution, hot reload, batching and metrics live here once; the
adapters report each answer to `monitoring` (service/serving/monitoring.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from registry import NotFoundError, Registry, RegistryError
from service.observability.metrics import ServiceMetrics
from service.serving.batching import LoopBatcher
from service.serving.errors import ModelUnusable, NotFound, without_location
from service.serving.monitoring import Monitoring
from service.serving.served import ServedModel, ServedModels
from service.serving.shadow import ShadowRunner
from service.serving.statistics import InferenceStatistics
from service.serving.validation import pixels_from_bytes
from service.serving.warmup import warmup_batches
from service.settings import ServiceSettings

__all__ = ["Answer", "ServingCore", "VersionInfo"]


@dataclass(frozen=True)
class Answer:
    """Probabilities (n, 10) float32 and labels (n,) int64, with the model that computed them."""

    model: ServedModel
    probabilities: NDArray[np.float32]
    labels: NDArray[np.int64]


@dataclass(frozen=True)
class VersionInfo:
    """What the registry and this server know of one version: manifest, aliases, load state."""

    name: str
    version: int
    manifest: dict[str, Any]
    aliases: dict[str, int]  # every alias of the model -> its version
    loaded_at: datetime | None  # when this server loaded it; None if not in memory
    serving: bool  # True if it is the default (unpinned) model right now


class ServingCore:
    """Owns the model repository, the event-loop batcher and the metrics of one server."""

    def __init__(
        self,
        repository: ServedModels,
        metrics: ServiceMetrics,
        *,
        max_images: int = 8192,
        loop_batcher: LoopBatcher | None = None,
        monitoring: Monitoring | None = None,
    ) -> None:
        self.models = repository
        self.loop_batcher = loop_batcher or LoopBatcher(enabled=False)
        self.metrics = metrics
        self.max_images = max_images
        self.shadows = ShadowRunner(metrics)
        self.statistics = InferenceStatistics()
        self.monitoring = monitoring or Monitoring(metrics)

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, metrics: ServiceMetrics | None = None
    ) -> ServingCore:
        metrics = metrics or ServiceMetrics()
        repository = ServedModels(
            Registry(settings.registry, cache_dir=settings.cache_dir),
            settings.model_name,
            alias=settings.alias,
            poll_interval_s=settings.poll_interval_s,
            cache_size=settings.cache_size,
            metrics=metrics,
            warmup=warmup_batches(settings.max_batch),
        )
        loop_batcher = LoopBatcher(
            max_batch_rows=settings.max_batch,
            max_delay_us=settings.max_delay_us,
            enabled=settings.batching,
            observe_batch=metrics.observe_batch,
            observe_queue_delay=metrics.observe_queue_delay,
        )
        monitoring = Monitoring.from_settings(settings, metrics)
        return cls(
            repository, metrics, max_images=settings.max_images, loop_batcher=loop_batcher,
            monitoring=monitoring,
        )  # fmt: skip

    @property
    def ready(self) -> bool:
        """True once a default model is loaded."""
        return self.models.current is not None

    def start(self) -> None:
        """Start monitoring, load the default model (if any) and begin polling the registry."""
        self.monitoring.start()
        self.models.start()

    def stop(self) -> None:
        self.models.stop()
        self.loop_batcher.close()
        self.shadows.close()
        self.monitoring.stop()

    def decode(
        self, data: bytes, dtype: str, shape: Sequence[int]
    ) -> NDArray[np.uint8] | NDArray[np.float32]:
        """Packed bytes -> checked pixels (n, 784); InvalidInput on any problem."""
        return pixels_from_bytes(data, dtype, shape, max_rows=self.max_images)

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
        gone: Callable[[], bool] | None = None,
        routing_key: str | None = None,
    ) -> Answer:
        """Probabilities and labels from the requested model version, via the loop batcher.

        `timeout`: seconds left before the caller's deadline (None: no deadline); `gone()`: has
        the caller cancelled? A request whose deadline passed (DeadlineExceeded) or whose caller
        left (Cancelled) costs no forward pass, batching on or off. A request that pins nothing
        goes to production or, for its percent, to the canary (sticky by ``routing_key``);
        afterwards it may be queued for the shadow. A pinned version that is not in memory yet
        is loaded (verified and warmed up) once, in a worker thread: the event loop never waits
        on the registry.
        """
        served = self.models.in_memory(version, alias, routing_key)
        if served is None:
            served = await asyncio.to_thread(self.models.get, version, alias)
        forward = self.statistics.timed(served.name, served.version, served.predictor)
        start = time.perf_counter_ns()
        computed_from = [start]  # when its forward pass began (set by the batcher)

        def started() -> None:
            computed_from[0] = time.perf_counter_ns()

        try:
            probabilities = await self.loop_batcher.run(forward, pixels, timeout, gone, started)
        except BaseException as err:  # also a cancelled wait: it reached the model and failed
            elapsed = time.perf_counter_ns() - start
            self.statistics.request(served.name, served.version, len(pixels), elapsed, None)
            if isinstance(err, Exception):  # a caller's cancellation is not the version's error
                self.metrics.observe_version(served.version, False, elapsed / 1e9)
            raise
        elapsed = time.perf_counter_ns() - start
        queued = computed_from[0] - start
        self.statistics.request(served.name, served.version, len(pixels), elapsed, queued)
        self.metrics.observe_version(served.version, True, elapsed / 1e9)
        labels = probabilities.argmax(axis=1).astype(np.int64)
        if version is None and not alias:
            shadow = self.models.shadow_of(served)
            if shadow is not None:  # runs after this answer is sent (service/serving/shadow.py)
                self.shadows.submit(shadow, pixels, labels)
        return Answer(served, probabilities, labels)

    async def describe(self, version: int | None = None, alias: str | None = None) -> VersionInfo:
        """One version: the served default when neither is given, else `version` or `alias`.

        Raises ModelNotReady (nothing served yet), NotFound or ModelUnusable. The registry reads
        run in a worker thread, off the event loop.
        """
        if version is None and alias is None:
            version = self.model().version
        return await asyncio.to_thread(self._describe, version, alias)

    async def list_versions(self) -> tuple[list[VersionInfo], dict[str, int]]:
        """Every complete version of the served model, oldest first, and the model's aliases."""
        return await asyncio.to_thread(self._list_versions)

    def _describe(self, version: int | None, alias: str | None) -> VersionInfo:
        with _registry_errors(self.models.registry.location):
            if version is None:
                version = self.models.resolve_alias(str(alias))
            manifest = self.models.registry.get(self.models.name, version).manifest
            aliases = self.models.registry.aliases(self.models.name)
        return self._info(version, manifest, aliases)

    def _list_versions(self) -> tuple[list[VersionInfo], dict[str, int]]:
        with _registry_errors(self.models.registry.location):
            listed = self.models.registry.list_versions(self.models.name)
            aliases = self.models.registry.aliases(self.models.name)
        return [self._info(mv.version, mv.manifest, aliases) for mv in listed], aliases

    def _info(self, version: int, manifest: dict[str, Any], aliases: dict[str, int]) -> VersionInfo:
        loaded = self.models.loaded(version)
        current = self.models.current
        return VersionInfo(
            name=self.models.name,
            version=version,
            manifest=manifest,
            aliases=aliases,
            loaded_at=loaded.loaded_at if loaded else None,
            serving=current is not None and current.version == version,
        )


@contextlib.contextmanager
def _registry_errors(location: str) -> Iterator[None]:
    """Turn the registry's lookup errors into PredictErrors (NOT_FOUND / FAILED_PRECONDITION),
    without the registry's root (``location``) in what is sent to the client."""
    try:
        yield
    except NotFoundError as err:
        raise NotFound(without_location(str(err), location)) from None
    except RegistryError as err:
        raise ModelUnusable(without_location(str(err), location)) from None

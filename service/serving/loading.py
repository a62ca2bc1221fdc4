"""Loading one model version to serve: verified, checked for MNIST's shape, warmed up; and the
small LRU cache that keeps versions pinned by requests in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.config import N_CLASSES, N_PIXELS
from registry import Registry
from service.serving.model import Predictor
from service.serving.warmup import warm_up

__all__ = ["LoadedVersions", "ServedModel", "load_version"]


@dataclass(frozen=True)
class ServedModel:
    """One loaded, verified model version; immutable so it can be shared across threads."""

    name: str
    version: int
    predictor: Predictor
    manifest: dict[str, Any] = field(repr=False)
    loaded_at: datetime


def load_version(
    registry: Registry, name: str, version: int, warmup: tuple[int, ...]
) -> ServedModel:
    """Load and verify ``version`` (every sha256), check it maps 784 pixels to 10 digits and warm
    it up at the ``warmup`` batch sizes. Raises the registry's errors, ValueError for another
    shape, WarmupError for non-finite or non-normalised outputs: such a version never serves."""
    loaded = registry.load(name, version)
    predictor = Predictor.from_loaded(loaded)
    if (predictor.n_features, predictor.n_classes) != (N_PIXELS, N_CLASSES):
        raise ValueError(
            f"layer sizes {predictor.layer_sizes} do not map {N_PIXELS} pixels to "
            f"{N_CLASSES} digits"
        )
    warm_up(predictor, warmup)
    return ServedModel(name, loaded.version, predictor, dict(loaded.manifest), datetime.now(UTC))


class LoadedVersions:
    """The least recently used ``size`` versions kept in memory, safe across threads."""

    def __init__(self, size: int) -> None:
        self._size = max(size, 1)
        self._models: OrderedDict[int, ServedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: int) -> ServedModel | None:
        """The cached model of ``version`` (now the most recently used), or None."""
        with self._lock:
            served = self._models.get(version)
            if served is not None:
                self._models.move_to_end(version)
            return served

    def remember(self, served: ServedModel) -> None:
        """Keep ``served``, dropping the least recently used beyond the size."""
        with self._lock:
            self._models[served.version] = served
            self._models.move_to_end(served.version)
            while len(self._models) > self._size:
                self._models.popitem(last=False)

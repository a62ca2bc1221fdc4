"""ServedModels without a server: default model, pinned LRU cache, refused versions, errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from registry import Registry
from service.observability.metrics import ServiceMetrics
from service.serving.errors import InvalidInput, ModelNotReady, ModelUnusable, NotFound
from service.serving.served import ServedModels
from tests.helpers.toy_models import corrupt, publish


def _repository(registry: Registry, **kwargs: object) -> ServedModels:
    return ServedModels(registry, "digits", poll_interval_s=0, **kwargs)  # type: ignore[arg-type]


def test_not_ready_until_a_version_exists(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    repository = _repository(registry)
    repository.start()
    with pytest.raises(ModelNotReady):
        repository.get()
    publish(registry, seed=1)
    assert repository.refresh() and repository.get().version == 1
    assert not repository.refresh()  # nothing changed: no reload


def test_latest_is_served_without_a_production_alias(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1, production=False)
    publish(registry, seed=2, production=False)
    repository = _repository(registry)
    repository.start()
    assert repository.get().version == 2


def test_pinned_versions_live_in_a_bounded_lru(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    for seed in (1, 2, 3, 4):
        publish(registry, seed=seed, production=False)
    registry.set_alias("digits", "production", 4)
    repository = _repository(registry, cache_size=2)
    repository.start()  # caches 4
    first = repository.get(version=1)
    assert repository.get(version=1) is first  # a hit returns the very same object
    repository.get(version=2)  # cache now {1, 2}: 4 evicted but still served as the default
    assert repository.loaded(4) is repository.current
    repository.get(version=3)  # evicts 1, the least recently used
    assert repository.loaded(1) is None and repository.loaded(3) is not None


def test_refused_version_keeps_the_old_one_and_counts(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)
    metrics = ServiceMetrics()
    repository = _repository(registry, metrics=metrics)
    repository.start()
    bad = publish(registry, seed=2)
    corrupt(registry, bad)
    assert not repository.refresh()
    assert repository.get().version == 1
    assert metrics.reload_failures._value.get() == 1
    with pytest.raises(ModelUnusable, match=f"version {bad} failed verification"):
        repository.get(version=bad)


def test_lookup_errors(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)
    repository = _repository(registry)
    repository.start()
    with pytest.raises(NotFound, match="no version 9"):
        repository.get(version=9)
    with pytest.raises(NotFound, match="no alias 'staging'"):
        repository.get(alias="staging")
    with pytest.raises(InvalidInput):
        repository.get(alias="bad/alias")


def test_non_digit_models_are_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    params = {"W1": np.ones((3, 784), np.float32), "b1": np.zeros((3, 1), np.float32)}
    registry.publish("digits", params, {"loss": "cross_entropy"})
    repository = _repository(registry)
    repository.start()
    assert repository.current is None  # 784 -> 3 is not a digit classifier


def test_a_dangling_alias_keeps_the_loaded_version_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(tmp_path / "models")
    for seed in (1, 2, 3):
        publish(registry, seed=seed)
    repository = _repository(registry)
    repository.start()
    assert repository.get().version == 3
    shutil.rmtree(registry.root / "digits" / "3")  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="service.serving.served"):
        assert not repository.refresh()
    assert repository.get().version == 3
    logged = caplog.text
    assert "keeps serving 'digits' version 3 from memory" in logged
    assert "alias 'production'" in logged and "no longer exists" in logged
    assert "no model to serve yet" not in logged

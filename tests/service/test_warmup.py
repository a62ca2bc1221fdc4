"""Warm-up gate: a version runs at the batch sizes it will see; bad outputs refuse it."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from registry import Registry
from service.client import ServiceError
from service.serving.model import Predictor
from service.serving.warmup import WarmupError, warm_up, warmup_batches
from tests.helpers.servers import Running
from tests.helpers.toy_models import MODEL, publish, random_images, toy_params


def _with_nan(seed: int) -> dict[str, np.ndarray]:
    params = toy_params(seed)
    params["W2"][3, 7] = np.nan  # one weight: every row's hidden unit 3 and so every logit is NaN
    return params


def test_warmup_batches_cover_one_mid_and_max() -> None:
    assert warmup_batches(1024) == (1, 32, 1024)
    assert warmup_batches(8) == (1, 8)
    assert warmup_batches(1) == (1,)


def test_good_weights_pass_and_nan_weights_fail() -> None:
    warm_up(Predictor(toy_params(1)), (1, 32, 64))
    with pytest.raises(WarmupError, match="not finite at batch 1"):
        warm_up(Predictor(_with_nan(1)), (1, 32, 64))


def test_outputs_that_are_not_probabilities_fail() -> None:
    class Doubled(Predictor):  # a forward pass whose rows sum to 2
        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            return super().predict_proba(x) * np.float32(2.0)

    with pytest.raises(WarmupError, match=r"outside \[0, 1\]|sum to 1"):
        warm_up(Doubled(toy_params(1)), (1,))


@pytest.mark.integration
def test_nan_version_passes_checksums_but_is_never_served(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry, max_batch=256)
    bad = registry.publish(MODEL, _with_nan(5), {"loss": "cross_entropy"}).version
    registry.verify(MODEL, bad)  # published that way: every checksum matches
    metrics = running.server.core.metrics
    registry.set_alias(MODEL, "production", bad)
    deadline = time.monotonic() + 10
    while metrics.warmup_failures._value.get() < 1:
        assert time.monotonic() < deadline, "the NaN version was never refused"
        time.sleep(0.02)
    images = random_images(4)
    for _ in range(20):  # several polls later, still the old version, and finite answers
        answer = running.client.predict(images)
        assert answer.version == 1 and np.isfinite(answer.probabilities).all()
        time.sleep(0.02)
    assert metrics.reload_failures._value.get() == 1
    assert metrics.warmup_failures._value.get() == 1
    with pytest.raises(ServiceError) as raised:  # pinned: refused as unusable, not answered
        running.client.predict(images, version=bad)
    assert raised.value.code.name == "FAILED_PRECONDITION"
    good = publish(registry, seed=6)
    deadline = time.monotonic() + 10
    while running.client.predict(images).version != good:
        assert time.monotonic() < deadline
        time.sleep(0.02)

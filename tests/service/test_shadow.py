"""Shadow traffic: answers are unchanged by a shadow; agreement and latency are measured."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry import Registry, traffic
from service.serving.model import Predictor
from tests.helpers.servers import Running
from tests.helpers.toy_models import publish, random_images, toy_params

pytestmark = pytest.mark.integration


def _samples(running: Running, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = running.server.core.metrics.exposition().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_shadow_leaves_answers_identical_and_measures_agreement(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    shadow_version = publish(registry, seed=2, production=False)
    running = start_server(registry)
    batches = [random_images(n, seed=n) for n in (1, 3, 8, 1, 5)]
    before = [running.client.predict(images) for images in batches]
    traffic.set_shadow(registry, "digits", shadow_version, 100)
    deadline = time.monotonic() + 10
    while (routing := running.server.core.models.routing) is None or routing.shadow is None:
        assert time.monotonic() < deadline, "the shadow was never loaded"
        time.sleep(0.02)
    after = [running.client.predict(images) for images in batches]
    for old, new in zip(before, after, strict=True):
        assert new.version == old.version == 1
        assert np.array_equal(new.probabilities, old.probabilities)  # bit for bit
        assert np.array_equal(new.labels, old.labels)
    rows = sum(len(images) for images in batches)
    shadow = Predictor(toy_params(2))
    expected_agree = sum(
        int(np.count_nonzero(shadow.predict(images.reshape(len(images), 784)) == answer.labels))
        for images, answer in zip(batches, after, strict=True)
    )
    agree_key = (("agreement", "agree"), ("version", str(shadow_version)))
    disagree_key = (("agreement", "disagree"), ("version", str(shadow_version)))
    while sum(_samples(running, "digits_shadow_rows_total").values()) < rows:
        assert time.monotonic() < deadline, "the shadow runs were not all counted"
        time.sleep(0.02)
    counted = _samples(running, "digits_shadow_rows_total")
    assert counted[agree_key] == expected_agree
    assert counted[disagree_key] == rows - expected_agree
    latency = _samples(running, "digits_shadow_latency_seconds_count")
    assert 1 <= latency[(("version", str(shadow_version)),)] <= len(batches)  # passes may group
    # Pinned requests are not shadowed, and the version served is never its own shadow.
    running.client.predict(batches[0], version=1)
    traffic.stop_shadow(registry, "digits")
    time.sleep(0.3)
    running.client.predict(batches[0])
    assert sum(_samples(running, "digits_shadow_rows_total").values()) == rows

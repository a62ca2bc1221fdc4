"""DriftMonitor on its own: the background fold, the bounded queue and the sliding window."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.profile import profile
from service.observability.drift import DriftMonitor
from service.serving.model import Predictor
from service.serving.served import ServedModel
from tests.helpers.toy_models import toy_params


def served_model(with_profile: bool = True) -> ServedModel:
    predictor = Predictor(toy_params(1))
    images = np.random.default_rng(0).integers(0, 256, (400, 784), dtype=np.uint8)
    manifest: dict[str, Any] = {"metrics": {"accuracy": 0.5}}
    if with_profile:
        manifest["profile"] = profile(images, predictor.predict_proba(images))
    return ServedModel("digits", 1, predictor, manifest, datetime.now(UTC))


def batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 256, (n, 784), dtype=np.uint8)
    return images, Predictor(toy_params(1)).predict_proba(images)


def samples(monitor: DriftMonitor) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(monitor)
    text = generate_latest(registry).decode()
    return {
        s.name + str(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_the_background_thread_folds_without_a_scrape():
    monitor = DriftMonitor(min_images=10, fold_interval_s=0.02)
    monitor.start()
    try:
        model = served_model()
        for seed in range(5):
            monitor.observe(model, *batch(10, seed))
        deadline = time.monotonic() + 10
        while not monitor.psi(1) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(monitor.psi(1)) >= {"ink", "row", "confidence"}
    finally:
        monitor.stop()


def test_a_full_queue_drops_and_counts_instead_of_waiting():
    monitor = DriftMonitor(pending_limit=5, fold_interval_s=0)
    model = served_model()
    for seed in range(8):
        monitor.observe(model, *batch(1, seed))
    found = samples(monitor)
    assert found["digits_drift_dropped_total[]"] == 3
    assert found["digits_confidence_count[('version', '1')]"] == 5


def test_the_window_slides_by_whole_folds():
    monitor = DriftMonitor(window_images=100, min_images=1, fold_interval_s=0)
    model = served_model()
    for seed in range(6):  # six folds of 40 images: the window keeps the last three (>= 100)
        monitor.observe(model, *batch(40, seed))
        monitor.fold()
    found = samples(monitor)
    assert found["digits_drift_window_images[('version', '1')]"] == 120
    assert found["digits_confidence_count[('version', '1')]"] == 240  # counters keep everything


def test_mixed_uint8_and_float_requests_fold_together():
    mixed, uint8_only = (DriftMonitor(min_images=1, fold_interval_s=0) for _ in range(2))
    model = served_model()
    images, probabilities = batch(20, 3)
    mixed.observe(model, images, probabilities)
    mixed.observe(model, images.astype(np.float32) / 255, probabilities)
    for _ in range(2):
        uint8_only.observe(model, images, probabilities)
    mixed.fold()
    uint8_only.fold()
    assert samples(mixed)["digits_drift_window_images[('version', '1')]"] == 40
    expected = uint8_only.psi(1)
    assert expected and mixed.psi(1) == {k: np.float64(v) for k, v in expected.items()}

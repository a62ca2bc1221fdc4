"""Drift metrics end to end: a trained model's server scores clean traffic near 0 and inverted,
cornered or rotated digits above the alert threshold (PSI against the manifest's profile)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from core.profile import DRIFT_ALERT_PSI
from registry import Registry
from tests.helpers.digit_data import cornered, inverted, publish_trained, rotated
from tests.helpers.metrics_text import by_label, value
from tests.helpers.servers import Running, start

pytestmark = pytest.mark.integration

N_IMAGES = 1000


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, NDArray[np.uint8]]:
    registry, images, _ = publish_trained(tmp_path_factory.mktemp("drift"))
    return registry, images[:N_IMAGES]


@pytest.fixture
def server(trained: tuple[Registry, NDArray[np.uint8]]) -> Iterator[Running]:
    # Folds only at scrape time, so every answer sent is in the window when the test reads it.
    running = start(trained[0], drift_window=N_IMAGES, drift_fold_interval_s=0)
    yield running
    running.close()


def drift_after(server: Running, images: NDArray[np.uint8]) -> dict[str, float]:
    for start_row in range(0, len(images), 50):  # many requests of a few images, like traffic
        server.client.predict(images[start_row : start_row + 50])
    return by_label(server, "digits_drift_psi", "statistic", version="1")


def test_the_manifest_carries_the_training_profile(trained: tuple[Registry, NDArray[np.uint8]]):
    manifest = trained[0].get("digits", 1).manifest
    statistics = manifest["profile"]["statistics"]
    assert {"ink", "height", "width", "row", "col", "confidence", "class"} <= set(statistics)
    for entry in statistics.values():
        assert abs(sum(entry["fractions"]) - 1.0) < 1e-9
        assert len(entry["fractions"]) == len(entry["edges"])


def test_clean_traffic_scores_near_zero(server: Running, trained):
    psi = drift_after(server, trained[1])
    assert set(psi) >= {"ink", "intensity", "height", "width", "row", "col", "confidence", "class"}
    assert max(psi.values()) < DRIFT_ALERT_PSI / 2, psi
    assert value(server, "digits_drift_window_images", version="1") == N_IMAGES


@pytest.mark.parametrize("transform", [inverted, cornered, rotated], ids=lambda f: f.__name__)
def test_drifted_traffic_scores_above_the_alert_threshold(
    server: Running, trained, transform: Callable[[NDArray[np.uint8]], NDArray[np.uint8]]
):
    psi = drift_after(server, transform(trained[1]))
    assert max(psi.values()) > DRIFT_ALERT_PSI, psi


def test_class_counts_and_confidence_histogram_count_every_image(server: Running, trained):
    answers = server.client.predict(trained[1][:300])
    counts = by_label(server, "digits_predicted_class_total", "class", version="1")
    expected = np.bincount(answers.labels, minlength=10)
    assert [counts.get(str(c), 0.0) for c in range(10)] == expected.tolist()
    assert value(server, "digits_confidence_count", version="1") == 300
    top1 = answers.probabilities.max(axis=1)
    assert value(server, "digits_confidence_bucket", version="1", le="0.9") == np.sum(top1 < 0.9)
    assert value(server, "digits_confidence_sum", version="1") == pytest.approx(top1.sum(), 1e-4)


def test_no_psi_below_the_minimum_window(server: Running, trained):
    server.client.predict(trained[1][:50])  # below drift_min_images (500)
    assert by_label(server, "digits_drift_psi", "statistic", version="1") == {}
    assert value(server, "digits_drift_window_images", version="1") == 50


def test_a_model_without_a_profile_exports_counts_but_no_psi(tmp_path: Path, trained):
    from tests.helpers.toy_models import publish

    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)  # a manifest without "profile"
    running = start(registry, drift_fold_interval_s=0, drift_min_images=1)
    try:
        running.client.predict(trained[1][:20])
        assert by_label(running, "digits_drift_psi", "statistic") == {}
        assert sum(by_label(running, "digits_predicted_class_total", "class").values()) == 20
    finally:
        running.close()

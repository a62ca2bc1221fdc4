"""Predict over a real server matches the MLP forward pass, for every input form."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core import MLP
from registry import Registry
from tests.helpers.oracle import reference_proba
from tests.helpers.servers import Running
from tests.helpers.toy_models import random_images, toy_params

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 784)])
def test_uint8_matches_mlp_predict_proba(served: Running, shape: tuple[int, ...]) -> None:
    images = random_images(5).reshape(shape)
    result = served.client.predict(images)
    expected = MLP.from_params(toy_params(1)).predict_proba(
        images.reshape(5, 784).astype(np.float32) / 255.0
    )
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(result.labels, expected.argmax(axis=1))
    assert (result.model, result.version) == ("digits", 1)
    assert result.probabilities.dtype == np.float32 and result.labels.dtype == np.int64


def test_float32_matches_reference_forward(served: Running) -> None:
    images = random_images(7, seed=3).reshape(7, 784).astype(np.float32) / 255.0
    result = served.client.predict(images)
    np.testing.assert_allclose(
        result.probabilities, reference_proba(toy_params(1), images), atol=1e-6
    )


def test_top_k_returns_best_classes_in_order(served: Running) -> None:
    images = random_images(4, seed=5)
    full = served.client.predict(images)
    best = served.client.predict(images, top_k=3)
    assert best.probabilities.shape == (4, 3) and best.classes is not None
    expected_classes = np.argsort(-full.probabilities, axis=1, kind="stable")[:, :3]
    assert np.array_equal(best.classes, expected_classes)
    np.testing.assert_array_equal(
        best.probabilities, np.take_along_axis(full.probabilities, expected_classes, axis=1)
    )
    assert np.array_equal(best.labels, full.labels)


def test_stream_answers_each_request_in_order(served: Running) -> None:
    batches = [random_images(n, seed=n) for n in (1, 3, 2, 1)]
    results = list(served.client.predict_stream(batches))
    assert [len(r.labels) for r in results] == [1, 3, 2, 1]
    for batch, result in zip(batches, results, strict=True):
        np.testing.assert_allclose(
            result.probabilities, served.client.predict(batch).probabilities, atol=0
        )
    assert [r.request_id for r in results] == ["0", "1", "2", "3"]


def test_request_id_is_echoed(served: Running) -> None:
    assert served.client.predict(random_images(1), request_id="abc-123").request_id == "abc-123"


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_both_event_loops_serve_the_same_answers(
    registry: Registry, start_server: Callable[..., Running], event_loop: str
) -> None:
    running = start_server(registry, event_loop=event_loop)
    loop_module = type(running.server.loop.loop).__module__
    assert loop_module.startswith("uvloop" if event_loop == "uvloop" else "asyncio")
    images = random_images(3, seed=5)
    result = running.client.predict(images)
    expected = MLP.from_params(toy_params(1)).predict_proba(
        images.reshape(3, 784).astype(np.float32) / 255.0
    )
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)

"""LiveAccuracy: ground-truth feedback joined with recent predictions, as live accuracy per version.

Every answered Predict request is remembered (request id -> model version and predicted labels)
in a bounded OrderedDict: the oldest ids are forgotten first, so memory stays at
`capacity` requests (~200 bytes each). Feedback for a remembered id counts as correct or wrong
against the version that answered it; an id that was never seen or already forgotten is
NotFound. Exposed to Prometheus as digits_feedback_total{version, outcome}, the ratio
digits_live_accuracy{version}, and digits_model_test_accuracy{version} from each manifest, so an
alert rule can compare the two.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from service.serving.errors import InvalidInput, NotFound

__all__ = ["Judgement", "LiveAccuracy"]


@dataclass(frozen=True)
class Judgement:
    """The outcome of one feedback: which version answered, what it said, and if it was right."""

    version: int
    predicted: int
    label: int
    correct: bool


class LiveAccuracy:
    """Recent predictions by request id, and per-version counts of correct and wrong answers."""

    def __init__(self, capacity: int = 100_000, n_classes: int = 10) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.n_classes = n_classes
        # Not a plain dict: deleting its oldest key leaves a hole that every later next(iter())
        # scans, which cost 25 us per request at capacity 100,000 (0.3 us here).
        self._recent: OrderedDict[str, tuple[int, NDArray[np.int64]]] = OrderedDict()
        self._test_accuracy: dict[int, float | None] = {}
        self._counts: dict[int, list[int]] = {}  # version -> [correct, wrong]
        self._lock = threading.Lock()  # feedback and scrapes; remember runs on the loop only

    def remember(self, request_id: str, model: Any, labels: NDArray[np.int64]) -> None:
        """Record an answer (model: a ServedModel); forgets the oldest beyond capacity.

        Called on the event loop for every answered request: an insert and, when full, one
        O(1) eviction of the oldest.
        """
        version = model.version
        if version not in self._test_accuracy:
            self._test_accuracy[version] = _test_accuracy(model.manifest)
        recent = self._recent
        recent[request_id] = (version, labels)
        if len(recent) > self.capacity:
            recent.popitem(last=False)

    def judge(self, request_id: str, label: int, index: int = 0) -> Judgement:
        """Count feedback: `label` is the true class of image `index` of request `request_id`.

        Raises InvalidInput for a label outside [0, n_classes) or an index past the request's
        images, NotFound for an id not (or no longer) remembered.
        """
        if not 0 <= label < self.n_classes:
            raise InvalidInput(f"label must be in 0..{self.n_classes - 1}, got {label}")
        entry = self._recent.get(request_id)
        if entry is None:
            raise NotFound(
                f"request id {request_id!r} is unknown or older than the last "
                f"{self.capacity} predictions"
            )
        version, labels = entry
        if not 0 <= index < len(labels):
            raise InvalidInput(f"index {index} is outside the request's {len(labels)} image(s)")
        predicted = int(labels[index])
        correct = predicted == label
        with self._lock:
            counts = self._counts.setdefault(version, [0, 0])
            counts[0 if correct else 1] += 1
        return Judgement(version, predicted, label, correct)

    def accuracy(self, version: int) -> float | None:
        """Live accuracy of `version` (None before any feedback for it)."""
        with self._lock:
            correct, wrong = self._counts.get(version, (0, 0))
        return correct / (correct + wrong) if correct + wrong else None

    def collect(self) -> Iterator[Metric]:
        feedback = CounterMetricFamily(
            "digits_feedback", "Ground-truth labels received, by model version and outcome",
            labels=["version", "outcome"],
        )  # fmt: skip
        live = GaugeMetricFamily(
            "digits_live_accuracy", "Fraction of answers confirmed correct by feedback",
            labels=["version"],
        )  # fmt: skip
        test = GaugeMetricFamily(
            "digits_model_test_accuracy", "Test-set accuracy from the model version's manifest",
            labels=["version"],
        )  # fmt: skip
        with self._lock:
            counts = {version: tuple(pair) for version, pair in self._counts.items()}
        for version, (correct, wrong) in sorted(counts.items()):
            feedback.add_metric([str(version), "correct"], float(correct))
            feedback.add_metric([str(version), "wrong"], float(wrong))
            live.add_metric([str(version)], correct / (correct + wrong))
        for version, accuracy in sorted(dict(self._test_accuracy).items()):
            if accuracy is not None:
                test.add_metric([str(version)], accuracy)
        yield feedback
        yield live
        yield test


def _test_accuracy(manifest: Mapping[str, Any]) -> float | None:
    value = (manifest.get("metrics") or {}).get("accuracy")
    return float(value) if isinstance(value, int | float) else None

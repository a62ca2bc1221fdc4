"""Metrics and losses against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import evaluate
from core.losses import cross_entropy, cross_entropy_delta, mse, mse_delta
from core.metrics import accuracy, confusion_matrix, cost_mse, one_hot, r2_score, rmse

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
LABELS = np.array([0, 1, 1, 2])


def test_accuracy_and_confusion_matrix() -> None:
    assert accuracy(PROBS, LABELS) == 0.75
    assert confusion_matrix(PROBS, LABELS).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_cost_mse_rmse_and_r2_by_hand() -> None:
    # squared errors per row: 0.14, 0.06, 0.86, 0.24 -> J = 1.30 / 4
    assert cost_mse(PROBS, LABELS) == pytest.approx(1.30 / 4)
    assert rmse(PROBS, LABELS) == pytest.approx(math.sqrt(1.30 / 12))
    # one-hot column means 0.25, 0.5, 0.25 -> SS_tot = 0.75 + 1.0 + 0.75 = 2.5
    assert r2_score(PROBS, LABELS) == pytest.approx(1 - 1.30 / 2.5)


def test_perfect_predictions() -> None:
    perfect = one_hot(LABELS, 3, np.float64)
    metrics = evaluate(perfect, LABELS)
    assert metrics["accuracy"] == 1.0 and metrics["cost_mse"] == 0.0 and metrics["r2"] == 1.0
    assert metrics["cross_entropy"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["per_class_accuracy"] == [1.0, 1.0, 1.0]


def test_evaluate_bundles_every_metric() -> None:
    metrics = evaluate(PROBS, LABELS)
    expected_ce = -np.mean(np.log([0.7, 0.8, 0.3, 0.6]))
    assert metrics["cross_entropy"] == pytest.approx(expected_ce)
    assert metrics["per_class_accuracy"] == [1.0, 0.5, 1.0]
    assert metrics["samples"] == 4


def test_losses_known_values_and_deltas() -> None:
    logits = np.log(PROBS)  # softmax(log p) == p since rows sum to 1
    targets = one_hot(LABELS, 3, np.float64)
    assert cross_entropy(logits, PROBS, targets) == pytest.approx(
        -np.mean(np.log([0.7, 0.8, 0.3, 0.6]))
    )
    assert mse(logits, PROBS, targets) == pytest.approx(1.30 / 4)
    np.testing.assert_allclose(cross_entropy_delta(PROBS, targets), (PROBS - targets) / 4)
    # MSE's logit gradient is the full softmax Jacobian (diag(a) - a a^T) applied to 2 (a - y) / m.
    delta = mse_delta(PROBS, targets)
    for row in range(4):
        a = PROBS[row]
        jacobian = np.diag(a) - np.outer(a, a)
        np.testing.assert_allclose(delta[row], jacobian @ (2 * (a - targets[row]) / 4), rtol=1e-12)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match="expected probabilities"):
        accuracy(PROBS, LABELS[:2])

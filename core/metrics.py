"""Metrics of class probabilities against integer labels, as the design document defines them.

``cost_mse`` is the design document's J (squared error summed over classes, averaged over
samples), ``rmse`` is the root of the element-wise mean squared error (sqrt(J / n_classes)), and
``r2`` is the design document's coefficient of determination with the mean of each one-hot
column as y-bar (summed over classes, i.e. scikit-learn's "variance_weighted" R^2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core import losses

Array = NDArray[np.floating]
Labels = NDArray[np.integer]


def check_labels(labels: Labels, n_classes: int) -> Labels:
    """The labels as a 1-D array; ValueError unless every one is in [0, n_classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    return labels


def one_hot(labels: Labels, n_classes: int, dtype: type[np.floating] = np.float32) -> Array:
    """(m,) integer labels -> (m, n_classes) one-hot rows; labels outside the range raise."""
    labels = check_labels(labels, n_classes)
    encoded = np.zeros((labels.size, n_classes), dtype=dtype)
    encoded[np.arange(labels.size), labels] = 1
    return encoded


def _check(probs: Array, labels: Labels) -> tuple[Array, Labels]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(
            f"expected probabilities (m, k) and labels (m,), got {probs.shape}, {labels.shape}"
        )
    if probs.shape[0] == 0:
        raise ValueError("cannot compute metrics of an empty set")
    return probs, labels


def accuracy(probs: Array, labels: Labels) -> float:
    """Fraction of rows whose arg-max equals the label (the design document's accuracy)."""
    probs, labels = _check(probs, labels)
    return float(np.mean(probs.argmax(axis=1) == labels))


def cost_mse(probs: Array, labels: Labels) -> float:
    """The design document's cost J = (1/m) sum_i ||y_i - a_i||^2."""
    probs, labels = _check(probs, labels)
    return losses.mse(None, probs, one_hot(labels, probs.shape[1], np.float64))


def rmse(probs: Array, labels: Labels) -> float:
    """Root of the mean squared error over all m * k entries."""
    return math.sqrt(cost_mse(probs, labels) / np.shape(probs)[1])


def r2_score(probs: Array, labels: Labels) -> float:
    """1 - SS_res / SS_tot with y-bar the per-class mean of the one-hot targets."""
    probs, labels = _check(probs, labels)
    targets = one_hot(labels, probs.shape[1], np.float64)
    residual = float(((targets - probs) ** 2).sum())
    total = float(((targets - targets.mean(axis=0)) ** 2).sum())
    return 1.0 - residual / total if total > 0 else float("nan")


def cross_entropy(probs: Array, labels: Labels) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at 1e-12)."""
    probs, labels = _check(probs, labels)
    picked = probs[np.arange(labels.size), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def confusion_matrix(probs: Array, labels: Labels) -> NDArray[np.int64]:
    """(k, k) counts: row = true class, column = predicted class."""
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    flat = labels.astype(np.int64) * n_classes + probs.argmax(axis=1)
    counts = np.bincount(flat, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


def evaluate(probs: Array, labels: Labels) -> dict[str, Any]:
    """Every metric at once, JSON-ready: floats, a per-class accuracy list and the matrix."""
    matrix = confusion_matrix(probs, labels)
    support = matrix.sum(axis=1)
    per_class = np.divide(
        np.diag(matrix), support, out=np.full(len(support), np.nan), where=support > 0
    )
    return {
        "accuracy": accuracy(probs, labels),
        "cost_mse": cost_mse(probs, labels),
        "rmse": rmse(probs, labels),
        "r2": r2_score(probs, labels),
        "cross_entropy": cross_entropy(probs, labels),
        "per_class_accuracy": [float(value) for value in per_class],
        "confusion_matrix": matrix.tolist(),
        "samples": len(labels),
    }

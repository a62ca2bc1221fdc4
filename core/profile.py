"""Data profiles for drift detection: per-image statistics, their histograms, and the PSI.

A profile summarises a population of images and the model's answers on them as one histogram
per statistic over fixed bin edges (`STATISTICS`): five input statistics (ink fraction, mean
intensity, bounding-box height and width, centre of mass row and column) and two output
statistics (top-1 confidence, predicted class). The pipeline stores the profile of the
training set in the manifest at publish time; the server keeps the same histograms over a
sliding window of live traffic and compares the two with the population stability index.
Fixed edges (not the reference's quantiles) let the server bin each request without knowing
the reference, and make profiles of different model versions comparable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DRIFT_ALERT_PSI",
    "INK_THRESHOLD",
    "OUTPUT_STATISTICS",
    "PSI_FLOOR",
    "STATISTICS",
    "bin_counts",
    "image_statistics",
    "profile",
    "psi",
    "reference_profile",
]

INK_THRESHOLD = 0.5  # a pixel is ink at >= half intensity (uint8 >= 128)
PSI_FLOOR = 1e-4  # empty bins count as this fraction, so the logarithm stays finite
OUTPUT_STATISTICS = ("confidence", "class")  # of the model's answers, not of the images
DRIFT_ALERT_PSI = 0.2  # above: a significant shift (deploy/prometheus/alerts.yml uses the same)
_CONFIDENCE_EDGES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)

# Statistic -> bin edges. A value v falls in bin i when edges[i] <= v < edges[i + 1]; values
# below the first edge count in bin 0 and values from the last edge on in the last bin.
STATISTICS: dict[str, tuple[float, ...]] = {
    "ink": tuple(float(e) for e in np.linspace(0.0, 0.6, 25)),  # fraction of ink pixels
    "intensity": tuple(float(e) for e in np.linspace(0.0, 0.6, 25)),  # mean pixel in [0, 1]
    "height": tuple(float(e) for e in range(0, 29, 2)),  # bounding box rows of ink, pixels
    "width": tuple(float(e) for e in range(0, 29, 2)),  # bounding box columns of ink, pixels
    "row": tuple(float(e) for e in range(0, 28, 2)),  # centre of mass row, pixels from the top
    "col": tuple(float(e) for e in range(0, 28, 2)),  # centre of mass column, pixels from the left
    "confidence": _CONFIDENCE_EDGES,  # top-1 probability
    "class": tuple(float(c) for c in range(10)),  # predicted class
}


def image_statistics(
    pixels: NDArray[np.generic], probabilities: NDArray[np.floating]
) -> dict[str, NDArray[np.float32]]:
    """Per-image values of every statistic in STATISTICS, each of shape (n,).

    pixels: (n, 784) or (n, 28, 28), uint8 0..255 or floats in [0, 1]; probabilities: (n, 10).
    An image without ink has a bounding box of 0 x 0 and its centre of mass in the middle.
    Raises ValueError on mismatched shapes.
    """
    n = len(pixels)
    if probabilities.shape != (n, 10):
        raise ValueError(f"expected probabilities of shape ({n}, 10), got {probabilities.shape}")
    images = np.asarray(pixels).reshape(n, 28, 28)
    if images.dtype == np.uint8:  # integer sums, scaled once: no float copy of the images
        ink = (images >= 128).view(np.uint8)
        # einsum, not sum(axis=...): 0.2 against 0.4-0.5 us an image for each of these four
        # reductions (same run, NumPy 2); integer sums, so the same values.
        row_mass = _reduce("nij->ni", images) * np.float32(1.0 / 255.0)  # (n, 28)
        col_mass = _reduce("nij->nj", images) * np.float32(1.0 / 255.0)  # (n, 28)
    else:
        scaled = images.astype(np.float32, copy=False)
        ink = (scaled >= INK_THRESHOLD).view(np.uint8)
        row_mass, col_mass = scaled.sum(axis=2), scaled.sum(axis=1)  # (n, 28) each
    rows_ink, cols_ink = _reduce("nij->ni", ink), _reduce("nij->nj", ink)  # (n, 28) counts
    total = row_mass.sum(axis=1)
    positions = np.arange(28, dtype=np.float32)
    safe = np.where(total > 0, total, 1.0)
    return {
        "ink": rows_ink.sum(axis=1).astype(np.float32) / np.float32(784.0),
        "intensity": (total / 784.0).astype(np.float32),
        "height": _extent(rows_ink > 0),
        "width": _extent(cols_ink > 0),
        "row": np.where(total > 0, row_mass @ positions / safe, 13.5).astype(np.float32),
        "col": np.where(total > 0, col_mass @ positions / safe, 13.5).astype(np.float32),
        "confidence": probabilities.max(axis=1).astype(np.float32),
        "class": probabilities.argmax(axis=1).astype(np.float32),
    }


def _reduce(subscripts: str, images: NDArray[np.uint8]) -> NDArray[np.int32]:
    """Row ("nij->ni") or column ("nij->nj") sums of (n, 28, 28) uint8 images, as int32."""
    sums: NDArray[np.int32] = np.einsum(subscripts, images, dtype=np.int32)
    return sums


def _extent(any_ink: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Rows (or columns) from the first to the last one with ink, inclusive; 0 without ink."""
    first = any_ink.argmax(axis=1)
    last = any_ink.shape[1] - 1 - any_ink[:, ::-1].argmax(axis=1)
    return np.where(any_ink.any(axis=1), last - first + 1, 0).astype(np.float32)


def bin_counts(statistics: Mapping[str, NDArray[np.floating]]) -> dict[str, NDArray[np.int64]]:
    """Histogram counts of each statistic over its STATISTICS edges (len(edges) bins each)."""
    counts = {}
    for name, edges in STATISTICS.items():
        index = np.searchsorted(np.asarray(edges[1:]), statistics[name], side="right")
        counts[name] = np.bincount(index, minlength=len(edges)).astype(np.int64)
    return counts


def profile(
    pixels: NDArray[np.generic], probabilities: NDArray[np.floating], chunk: int = 10_000
) -> dict[str, Any]:
    """The reference profile of a population, JSON-ready for a manifest.

    Returns {"images": n, "statistics": {name: {"edges": [...], "fractions": [...]}}}; each
    fractions list sums to 1. Computed `chunk` images at a time to bound memory.
    """
    if len(pixels) == 0:
        raise ValueError("cannot profile an empty population")
    totals = {name: np.zeros(len(edges), dtype=np.int64) for name, edges in STATISTICS.items()}
    for start in range(0, len(pixels), chunk):
        part = slice(start, start + chunk)
        for name, counts in bin_counts(image_statistics(pixels[part], probabilities[part])).items():
            totals[name] += counts
    return {
        "images": len(pixels),
        "statistics": {
            name: {
                "edges": list(STATISTICS[name]),
                "fractions": [float(c) / len(pixels) for c in totals[name]],
            }
            for name in STATISTICS
        },
    }


def reference_profile(
    train_pixels: NDArray[np.generic],
    train_probabilities: NDArray[np.floating],
    test_pixels: NDArray[np.generic],
    test_probabilities: NDArray[np.floating],
) -> dict[str, Any]:
    """The manifest's drift reference: input statistics of the training images, output
    statistics (OUTPUT_STATISTICS) of the model's answers on held-out test images.

    A model is more confident on the rows it was fitted to than on new ones from the same
    population: against a training-set confidence reference, clean MNIST test traffic scored a
    confidence PSI of 0.14 (10,000 training rows, 2 epochs), against the test split's 0.12
    (docs/monitoring.md; the rest is the difference between the two halves of the test set).
    """
    inputs = profile(train_pixels, train_probabilities)
    outputs = profile(test_pixels, test_probabilities)
    statistics = dict(inputs["statistics"])
    statistics.update({name: outputs["statistics"][name] for name in OUTPUT_STATISTICS})
    return {
        "images": {"inputs": inputs["images"], "outputs": outputs["images"]},
        "sources": {"inputs": "train", "outputs": "test"},
        "statistics": statistics,
    }


def psi(expected: NDArray[Any] | Sequence[float], actual: NDArray[Any] | Sequence[float]) -> float:
    """Population stability index of `actual` against `expected` (bin fractions or counts).

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i) over bins, with a_i, e_i the fractions of each
    population in bin i (each floored at PSI_FLOOR). It is the symmetric Kullback-Leibler
    divergence (Jeffreys divergence) of the two binned distributions. Source: N. Siddiqi,
    "Credit Risk Scorecards" (Wiley, 2006), ch. 8; B. Yurdakul, "Statistical Properties of
    Population Stability Index" (PhD thesis, Western Michigan University, 2018). Credit-scoring
    rule of thumb: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 significant; digits alerts at 0.2.
    Raises ValueError when the bin counts differ or a population is empty.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"expected {e.shape[0]} bins in both populations, got {a.shape[0]}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("both populations need at least one observation")
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    value = float(np.sum((a - e) * np.log(a / e)))
    return value if math.isfinite(value) else math.inf

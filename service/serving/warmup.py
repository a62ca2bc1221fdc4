"""Warm-up gate: forward passes a version must pass before it may answer a request.

A version is served only after `warm_up` ran it at the batch sizes the server sees (one row, a
middle size and the batcher's maximum) on uint8 and float32 pixels and found every output row
finite, within [0, 1] and summing to 1. This also pays the first-call costs (allocations, BLAS
thread start-up, page faults on the weights) before the swap instead of on live requests. A
version whose weights are corrupt in value (a NaN that was published as such, so its checksums
match) fails here and is refused like a version whose checksums do not match.
"""

from __future__ import annotations

import numpy as np

from service.serving.model import Predictor

__all__ = ["WarmupError", "warm_up", "warmup_batches"]

_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; this only catches real faults
_MID_BATCH = 32


class WarmupError(ValueError):
    """The version produced unusable outputs during warm-up (message says which and where)."""


def warmup_batches(max_batch: int) -> tuple[int, ...]:
    """Batch sizes to warm up: 1, a middle size and ``max_batch`` (distinct, ascending)."""
    return tuple(sorted({1, min(_MID_BATCH, max_batch), max(max_batch, 1)}))


def warm_up(predictor: Predictor, batches: tuple[int, ...] = (1, _MID_BATCH, 1024)) -> None:
    """Run ``predictor`` at each batch size; raise WarmupError on a non-probability output.

    Inputs are deterministic pseudo-random pixels (seed 0), uint8 (n, n_features) and the same
    scaled to float32, so both forward paths of the Predictor are exercised.
    """
    rng = np.random.default_rng(0)
    for rows in batches:
        pixels = rng.integers(0, 256, size=(rows, predictor.n_features), dtype=np.uint8)
        for x in (pixels, pixels.astype(np.float32) / np.float32(255.0)):
            _check(predictor.predict_proba(x), rows, predictor.n_classes, str(x.dtype))


def _check(proba: np.ndarray, rows: int, n_classes: int, dtype: str) -> None:
    where = f"at batch {rows} ({dtype} pixels)"
    if proba.shape != (rows, n_classes):
        raise WarmupError(f"output shape {proba.shape} {where}, expected {(rows, n_classes)}")
    finite = np.isfinite(proba)
    if not finite.all():
        bad = int(np.count_nonzero(~finite.all(axis=1)))
        raise WarmupError(f"{bad} of {rows} output rows are not finite {where}")
    if float(proba.min()) < 0.0 or float(proba.max()) > 1.0 + _SUM_TOLERANCE:
        raise WarmupError(f"probabilities outside [0, 1] {where}")
    worst = float(np.abs(proba.sum(axis=1, dtype=np.float64) - 1.0).max())
    if worst > _SUM_TOLERANCE:
        raise WarmupError(f"output rows sum to 1 +- {worst:.3g} {where}")

"""Output activations: a numerically stable row-wise softmax and log-softmax.

The one place the max-shift trick lives: `softmax`, `log_softmax`, the fused cross-entropy of
core.losses and the server's Predictor all call `shifted_exp`. The hidden layers' ReLU is applied
in place inside ``MLP._forward`` (np.maximum(z, 0, out=z)).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


def shifted_exp(logits: Array, *, out: Array | None = None) -> tuple[Array, Array, Array]:
    """exp(logits - row max), its row sums (m, 1) and the row maxima (m, 1), for (m, k) logits.

    Shifting by the row max keeps exp() from overflowing; softmax = exps / sums and
    log-sum-exp = log(sums) + maxima. ``out`` (e.g. ``logits`` itself) receives the exps.
    """
    maxima = logits.max(axis=1, keepdims=True)
    # The operator is ~0.5 us faster than np.subtract(..., out=None) on a (1, 10) array.
    exps = logits - maxima if out is None else np.subtract(logits, maxima, out=out)
    np.exp(exps, out=exps)
    return exps, exps.sum(axis=1, keepdims=True), maxima


def softmax(logits: Array, *, out: Array | None = None) -> Array:
    """Row-wise softmax of (m, k) logits; ``out=logits`` computes it in place (no allocation)."""
    exps, sums, _ = shifted_exp(logits, out=out)
    exps /= sums
    return exps


def log_softmax(logits: Array) -> Array:
    """Row-wise log(softmax(logits)) computed without forming softmax (no log(0))."""
    _, sums, maxima = shifted_exp(logits)
    result: Array = logits - (maxima + np.log(sums))
    return result

"""Losses over softmax outputs: each gives its value and its gradient w.r.t. the output logits.

Both are averaged over the m rows of the batch, so every gradient that follows carries the
1/m factor (the design document applies it to the bias gradient only; see docs/math.md).

- ``cross_entropy``: J = -(1/m) sum_i sum_k Y_ik log A_ik. Its logit gradient is (A - Y)/m,
  which is exactly the design document's output delta ``A - Y``: the delta it writes belongs
  to this loss, not to the MSE it names.
- ``mse``: the design document's cost J = (1/m) sum_i sum_k (Y_ik - A_ik)^2 (squared error
  summed over the classes of a sample, averaged over samples), with its true gradient through
  the softmax Jacobian: dZ = A * (G - sum_k G_k A_k), G = 2 (A - Y) / m.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from core.activations import log_softmax, shifted_exp

Array = NDArray[np.floating]


def cross_entropy(logits: Array, probs: Array, targets: Array) -> float:
    """Mean cross-entropy of one-hot (or soft) targets; uses log-softmax so log(0) never occurs."""
    del probs  # the value is computed from the logits for stability
    return float(-(targets * log_softmax(logits)).sum() / logits.shape[0])


def cross_entropy_delta(probs: Array, targets: Array) -> Array:
    """dJ/dZ for softmax + cross-entropy: (A - Y) / m."""
    delta = probs - targets
    delta *= 1.0 / probs.shape[0]
    return delta


def cross_entropy_from_labels(logits: Array, labels: NDArray[np.integer]) -> tuple[float, Array]:
    """Fused softmax + cross-entropy for integer labels (m,): the mean loss and dJ/dZ (m, k).

    The loss is mean(log-sum-exp(z) - z[label]) and the delta (A - Y)/m is formed in the
    softmax's own buffer, without a one-hot matrix: one exp pass over the logits in all.
    """
    rows = np.arange(len(labels))
    delta, sums, maxima = shifted_exp(logits)
    picked = logits[rows, labels]
    loss = float((np.log(sums[:, 0]) + maxima[:, 0] - picked).sum()) / len(labels)
    delta /= sums  # softmax probabilities
    delta[rows, labels] -= 1.0
    delta *= 1.0 / len(labels)
    return loss, delta


def mse(logits: Array | None, probs: Array, targets: Array) -> float:
    """The design document's cost J: squared error summed over classes, mean over m samples."""
    del logits
    diff = probs - targets
    return float(np.einsum("ij,ij->", diff, diff) / probs.shape[0])


def mse_delta(probs: Array, targets: Array) -> Array:
    """dJ/dZ for softmax + MSE: the softmax Jacobian applied to G = 2 (A - Y) / m."""
    grad_probs = (probs - targets) * (2.0 / probs.shape[0])
    inner = (grad_probs * probs).sum(axis=1, keepdims=True)
    delta: Array = probs * (grad_probs - inner)
    return delta


LOSS_FUNCTIONS = {"cross_entropy": cross_entropy, "mse": mse}
LOSS_DELTAS = {"cross_entropy": cross_entropy_delta, "mse": mse_delta}

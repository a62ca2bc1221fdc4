"""Output activations: a numerically stable row-wise softmax and log-softmax.

The hidden layers' ReLU is applied in place inside ``MLP._forward`` (np.maximum(z, 0, out=z)).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def softmax(logits: NDArray[np.floating]) -> NDArray[np.floating]:
    """Row-wise softmax of (m, k) logits; shifting by the row max keeps exp() from overflowing."""
    shifted: NDArray[np.floating] = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def log_softmax(logits: NDArray[np.floating]) -> NDArray[np.floating]:
    """Row-wise log(softmax(logits)) computed without forming softmax (no log(0))."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: NDArray[np.floating] = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result

"""The float64 reference oracle every forward pass is held to: the MLP, the Predictor, each wire.

Written from the design document, not from core: samples as columns, Z = W X + b, ReLU on the
hidden layers and a softmax over the last, all in float64. uint8 pixels are scaled by 1/255.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Stated tolerances (absolute, on probabilities in [0, 1]):
FLOAT64_ATOL = 1e-12  # core.MLP in float64: the same arithmetic up to summation order
FLOAT32_ATOL = 1e-6  # float32 paths (MLP float32, Predictor, every wire): ~8 ulps of 1.0


def reference_proba(params: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Probabilities (n, k) for x (n, 784) or (n, 28, 28): floats in [0, 1] or uint8 0..255."""
    x = np.asarray(x)
    a = x.reshape(len(x), -1).astype(np.float64)
    if x.dtype == np.uint8:
        a /= 255.0
    a = a.T  # (784, n): the design document's column layout
    n_layers = sum(1 for key in params if key.startswith("W"))
    for layer in range(1, n_layers + 1):
        w = np.asarray(params[f"W{layer}"], dtype=np.float64)
        b = np.asarray(params[f"b{layer}"], dtype=np.float64)
        z = w @ a + b
        a = np.maximum(z, 0.0) if layer < n_layers else z
    e = np.exp(a - a.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).T

"""Predictor: an inference-only MLP forward pass tuned for serving (float32, uint8-aware)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.activations import softmax
from core.mlp import layer_sizes_of

__all__ = ["Predictor"]

# Rows per forward pass inside one call: keeps the hidden activations in cache for huge batches.
_CHUNK_ROWS = 1024


class Predictor:
    """Softmax probabilities of an MLP with ReLU hidden layers, from its params dict.

    Weights are kept float32, transposed and contiguous so a batch is `x @ W.T` with no copies.
    For uint8 pixels the 1/255 scaling is folded into a copy of the first layer's weights, so a
    uint8 batch costs one astype and no separate scaling pass.
    """

    def __init__(self, params: Mapping[str, NDArray[Any]]) -> None:
        sizes = layer_sizes_of(params)  # ValueError unless W1..Wn are 2-D
        n_layers = len(sizes) - 1
        expected = {f"{p}{i}" for i in range(1, n_layers + 1) for p in "Wb"}
        if set(params) != expected:
            raise ValueError(f"params must hold W1, b1, ..., W{n_layers}; got {sorted(params)}")
        self._weights: list[NDArray[np.float32]] = []  # (n_in, n_out) each
        self._biases: list[NDArray[np.float32]] = []  # (1, n_out) each
        n_in = int(np.shape(params["W1"])[1])
        self.layer_sizes: tuple[int, ...] = (n_in,)
        for layer in range(1, n_layers + 1):
            weight = np.asarray(params[f"W{layer}"], dtype=np.float32)
            bias = np.asarray(params[f"b{layer}"], dtype=np.float32).reshape(1, -1)
            if weight.ndim != 2 or weight.shape[1] != self.layer_sizes[-1]:
                raise ValueError(f"W{layer} has shape {weight.shape}, expected (*, {n_in})")
            if bias.shape[1] != weight.shape[0]:
                raise ValueError(f"b{layer} has {bias.shape[1]} values, expected {weight.shape[0]}")
            self._weights.append(np.ascontiguousarray(weight.T))
            self._biases.append(np.ascontiguousarray(bias))
            self.layer_sizes += (int(weight.shape[0]),)
            n_in = int(weight.shape[0])
        self._first_uint8 = np.ascontiguousarray(self._weights[0] * np.float32(1.0 / 255.0))

    @classmethod
    def from_loaded(cls, loaded: Any) -> Predictor:
        """Build from a registry LoadedModel (uses its .params)."""
        return cls(loaded.params)

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_classes(self) -> int:
        return self.layer_sizes[-1]

    def predict_proba(self, x: NDArray[Any]) -> NDArray[np.float32]:
        """Probabilities (n, n_classes) for x (n, n_features): uint8 0..255 or floats in [0, 1]."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected x of shape (n, {self.n_features}), got {x.shape}")
        if len(x) <= _CHUNK_ROWS:
            return self._forward(x)
        out = np.empty((len(x), self.n_classes), dtype=np.float32)
        for start in range(0, len(x), _CHUNK_ROWS):
            out[start : start + _CHUNK_ROWS] = self._forward(x[start : start + _CHUNK_ROWS])
        return out

    def predict(self, x: NDArray[Any]) -> NDArray[np.int64]:
        """Most probable class of each row, shape (n,)."""
        labels: NDArray[np.int64] = self.predict_proba(x).argmax(axis=1).astype(np.int64)
        return labels

    def _forward(self, x: NDArray[Any]) -> NDArray[np.float32]:
        if x.dtype == np.uint8:
            first = self._first_uint8
            h = x.astype(np.float32) @ first  # (n, hidden1), pixels scaled by the folded 1/255
        else:
            h = np.asarray(x, dtype=np.float32) @ self._weights[0]
        h += self._biases[0]
        for weight, bias in zip(self._weights[1:], self._biases[1:], strict=True):
            np.maximum(h, 0.0, out=h)  # ReLU of the previous layer, in place
            h = h @ weight  # (n, n_out)
            h += bias
        return softmax(h, out=h)  # in place: h is this call's own buffer

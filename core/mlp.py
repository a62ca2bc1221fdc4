"""The multi-layer perceptron: ReLU hidden layers, a softmax output, and back-propagation.

Parameters follow the design document's table: ``W{l}`` is (n_out, n_in) and ``b{l}`` is
(n_out, 1). Rows of ``X`` are samples, so a layer computes ``Z = X @ W.T + b.T``, the transpose
of the design document's column layout ``Z = W X + b`` with identical numbers.

All parameters live in one contiguous buffer (``flat_params``) and ``params`` holds views of
it, likewise the gradients: Adam then updates the whole network with a handful of vector
operations instead of a loop of small ones. Update parameters in place
(``mlp.params["W1"][...] = w``); the mapping itself cannot be re-bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from core.activations import softmax
from core.config import DEFAULT_LAYER_SIZES, ModelConfig
from core.losses import LOSS_DELTAS, LOSS_FUNCTIONS, cross_entropy_from_labels

Array = NDArray[np.floating]
_PREDICT_CHUNK = 8192  # rows per forward pass in predict_proba: bounds peak memory


def param_shapes(layer_sizes: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """Names and shapes of the parameters, in order: W1 (n1, n0), b1 (n1, 1), W2, b2, ..."""
    shapes: dict[str, tuple[int, int]] = {}
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(layer_sizes), 1):
        shapes[f"W{layer}"] = (n_out, n_in)
        shapes[f"b{layer}"] = (n_out, 1)
    return shapes


def layer_sizes_of(params: Mapping[str, Any]) -> tuple[int, ...]:
    """(n0, n1, ..., nL) from W1 (n1, n0), W2 (n2, n1), ...; ValueError for another layout.

    The one walk over W1..Wn: MLP.from_params, the registry's manifest and the server's
    Predictor all infer the network's shape here.
    """
    shapes: list[tuple[int, ...]] = []
    while f"W{len(shapes) + 1}" in params:
        shapes.append(tuple(np.shape(params[f"W{len(shapes) + 1}"])))
    if not shapes:
        raise ValueError(f"params must hold W1, b1, ...; got keys {sorted(params)}")
    if any(len(shape) != 2 for shape in shapes):
        raise ValueError(f"weights must be 2-D, got shapes {shapes}")
    return (int(shapes[0][1]), *(int(shape[0]) for shape in shapes))


def count_params(layer_sizes: tuple[int, ...]) -> int:
    """Total number of scalars: 106,050 for (784, 128, 40, 10) (the design document: 105,898)."""
    return sum(rows * cols for rows, cols in param_shapes(layer_sizes).values())


def _views(flat: Array, shapes: Mapping[str, tuple[int, int]]) -> dict[str, Array]:
    views: dict[str, Array] = {}
    offset = 0
    for name, (rows, cols) in shapes.items():
        views[name] = flat[offset : offset + rows * cols].reshape(rows, cols)
        offset += rows * cols
    return views


def _check_dtype(dtype: DTypeLike) -> np.dtype[np.floating]:
    resolved = np.dtype(dtype)
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {resolved}")
    return resolved  # type: ignore[return-value]  # narrowed by the check above


class MLP:
    """Fully connected classifier: ``layer_sizes[0]`` features in, softmax over the last size."""

    def __init__(
        self,
        layer_sizes: tuple[int, ...] = DEFAULT_LAYER_SIZES,
        seed: int = 0,
        dtype: DTypeLike = np.float32,
        loss: str = "cross_entropy",
    ) -> None:
        self.config = ModelConfig(layer_sizes=tuple(layer_sizes), loss=loss)
        self.dtype = _check_dtype(dtype)
        shapes = param_shapes(self.config.layer_sizes)
        self.flat_params: Array = np.zeros(count_params(self.config.layer_sizes), self.dtype)
        self.flat_grads: Array = np.zeros_like(self.flat_params)
        self._params = _views(self.flat_params, shapes)
        self._grads = _views(self.flat_grads, shapes)
        self.params: Mapping[str, Array] = MappingProxyType(self._params)
        self.grads: Mapping[str, Array] = MappingProxyType(self._grads)
        # Per layer: W, b as a (1, n_out) row, dW, db as a (n_out,) vector; all views of the
        # flat buffers, built once so the training step does no name lookups.
        self._layers = [
            (
                self._params[f"W{layer}"],
                self._params[f"b{layer}"].T,
                self._grads[f"W{layer}"],
                self._grads[f"b{layer}"][:, 0],
            )
            for layer in range(1, len(self.config.layer_sizes))
        ]
        self._he_init(np.random.default_rng(seed))

    def _he_init(self, rng: np.random.Generator) -> None:
        """He-normal weights (std sqrt(2 / n_in), suited to ReLU) and zero biases."""
        for name, weights in self._params.items():
            if name.startswith("W"):
                fan_in = weights.shape[1]
                weights[...] = rng.standard_normal(weights.shape) * np.sqrt(2.0 / fan_in)

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, NDArray[np.floating]],
        loss: str = "cross_entropy",
        dtype: DTypeLike | None = None,
    ) -> MLP:
        """Rebuild a network from a parameter dict (e.g. loaded from the registry)."""
        sizes = layer_sizes_of(params)
        resolved = dtype if dtype is not None else np.asarray(params["W1"]).dtype
        model = cls(sizes, seed=0, dtype=resolved, loss=loss)
        expected = param_shapes(model.config.layer_sizes)
        if set(params) != set(expected):
            raise ValueError(f"expected parameters {sorted(expected)}, got {sorted(params)}")
        for name, shape in expected.items():
            if np.shape(params[name]) != shape:
                raise ValueError(f"{name} has shape {np.shape(params[name])}, expected {shape}")
            model._params[name][...] = params[name]
        return model

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return self.config.layer_sizes

    @property
    def loss(self) -> str:
        return self.config.loss

    @property
    def n_params(self) -> int:
        return int(self.flat_params.size)

    def params_and_grads(self) -> Iterator[tuple[str, Array, Array]]:
        """(name, parameter, gradient) triples, so optimisers never need to know the layers."""
        for name, param in self._params.items():
            yield name, param, self._grads[name]

    def _check_input(self, x: NDArray[np.generic]) -> Array:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"expected X of shape (m, {self.layer_sizes[0]}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"expected float pixels in [0, 1], got dtype {x.dtype}")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _forward(self, x: Array) -> list[Array]:
        """Activations of every layer: [X, A1, ..., A_{L-1}, logits]; hidden ones post-ReLU."""
        activations = [x]
        last = len(self._layers) - 1
        for index, (weights, bias_row, _, _) in enumerate(self._layers):
            z = activations[-1] @ weights.T  # (m, n_out)
            z += bias_row
            if index < last:
                np.maximum(z, 0, out=z)  # ReLU in place: A > 0 exactly where Z > 0
            activations.append(z)
        return activations

    def predict_proba(self, x: NDArray[np.generic]) -> Array:
        """Class probabilities (m, n_classes) for X (m, n_features) of float pixels in [0, 1]."""
        x = self._check_input(x)
        chunks = [
            softmax(self._forward(x[start : start + _PREDICT_CHUNK])[-1])
            for start in range(0, max(len(x), 1), _PREDICT_CHUNK)
        ]
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]

    def predict(self, x: NDArray[np.generic]) -> NDArray[np.int64]:
        """Most probable class of each row, shape (m,)."""
        labels: NDArray[np.int64] = self.predict_proba(x).argmax(axis=1).astype(np.int64)
        return labels

    def loss_and_grads(
        self, x: NDArray[np.generic], y_onehot: NDArray[np.generic]
    ) -> tuple[float, dict[str, Array]]:
        """Mean loss over the batch and its gradient for every parameter (same keys and shapes).

        The returned arrays are views of ``flat_grads``, overwritten by the next call.
        """
        loss_value, _ = self.forward_backward(x, y_onehot)
        return loss_value, dict(self._grads)

    def forward_backward(
        self, x: NDArray[np.generic], y_onehot: NDArray[np.generic]
    ) -> tuple[float, Array]:
        """Fill ``flat_grads`` for one batch; return the mean loss and the logits (m, k)."""
        x = self._check_input(x)
        y = np.asarray(y_onehot, dtype=self.dtype)
        if y.shape != (x.shape[0], self.layer_sizes[-1]):
            expected = (x.shape[0], self.layer_sizes[-1])
            raise ValueError(f"expected Y of shape {expected}, got {y.shape}")
        activations = self._forward(x)
        logits = activations.pop()
        probs = softmax(logits.copy())
        loss_value = LOSS_FUNCTIONS[self.loss](logits, probs, y)
        self._backward(activations, LOSS_DELTAS[self.loss](probs, y))
        return loss_value, logits

    def train_step(self, x: Array, labels: NDArray[np.integer]) -> tuple[float, Array]:
        """``forward_backward`` for integer labels, the fast path of ``core.train.fit``.

        Trusts its caller: ``x`` is a C-contiguous (m, n_features) array of ``self.dtype`` and
        labels are in range (``fit`` checks both once per run, not once per batch). For
        cross-entropy, the loss reuses the softmax's exponentials, log(sum e^s) - s[label],
        and the delta (A - Y)/m is formed without a one-hot matrix.
        """
        if self.loss != "cross_entropy":
            targets = np.zeros((len(labels), self.layer_sizes[-1]), self.dtype)
            targets[np.arange(len(labels)), labels] = 1
            return self.forward_backward(x, targets)
        activations = self._forward(x)
        logits = activations.pop()
        loss_value, delta = cross_entropy_from_labels(logits, labels)
        self._backward(activations, delta)
        return loss_value, logits

    def _backward(self, activations: list[Array], delta: Array) -> None:
        """dW = delta^T A_prev; db = sum of delta rows; delta_prev = (delta W) * [A_prev > 0]."""
        for index in range(len(self._layers) - 1, -1, -1):
            weights, _, weight_grad, bias_grad = self._layers[index]
            inputs = activations[index]
            np.matmul(delta.T, inputs, out=weight_grad)  # (n_out, n_in)
            np.sum(delta, axis=0, out=bias_grad)
            if index:
                delta = delta @ weights  # (m, n_in)
                delta *= inputs > 0

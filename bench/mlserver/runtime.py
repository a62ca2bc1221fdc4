"""MLServer runtime serving the digits MLP from a safetensors file with the same NumPy forward pass.

Runs inside MLServer's own virtual environment (bench/results/.venv-mlserver), so it imports
only mlserver, numpy and safetensors — never the digits packages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from safetensors.numpy import load_file

_LAYERS = (("W1", "b1"), ("W2", "b2"), ("W3", "b3"))


class DigitsRuntime(MLModel):
    """V2 model `digits`: input `images` (UINT8 0-255 or FP32 0-1, [N, 784]) -> `probabilities`."""

    async def load(self) -> bool:
        weights = load_file(str(self.settings.parameters.uri))
        # Row-major forward: (N, 784) @ W1.T keeps the batch on axis 0, as our Predictor does.
        self._layers = [
            (np.ascontiguousarray(weights[w].T, dtype=np.float32), weights[b].reshape(1, -1))
            for w, b in _LAYERS
        ]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = NumpyCodec.decode_input(payload.inputs[0]).reshape(-1, 784)
        x = images.astype(np.float32)
        if images.dtype == np.uint8:
            x *= 1.0 / 255.0
        probabilities = _forward(self._layers, x)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                NumpyCodec.encode_output("probabilities", probabilities),
                NumpyCodec.encode_output("label", probabilities.argmax(axis=1)),
            ],
        )

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """One answer per streamed request (MLModel's default answers only the first one)."""
        async for payload in payloads:
            yield await self.predict(payload)


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """softmax(relu(relu(x W1' + b1) W2' + b2) W3' + b3), row-wise: (N, 784) -> (N, 10)."""
    for index, (weight, bias) in enumerate(layers):
        x = x @ weight + bias
        if index < len(layers) - 1:
            np.maximum(x, 0.0, out=x)
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x

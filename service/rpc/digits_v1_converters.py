"""digits.v1 messages <-> arrays and plain values: small named conversions, unit-testable alone."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.generated.digits.v1 import digits_pb2 as pb
from service.serving.core import Answer, ServingCore, VersionInfo
from service.serving.errors import InvalidInput

__all__ = ["model_ref", "to_model_info", "to_pixels", "to_response"]

_DTYPE_NAMES = {pb.DTYPE_UINT8: "uint8", pb.DTYPE_FLOAT32: "float32"}


def to_pixels(core: ServingCore, tensor: pb.Tensor) -> NDArray[Any]:
    """The request's images as checked pixels (n, 784), uint8 or float32."""
    name = _DTYPE_NAMES.get(tensor.dtype)
    if name is None:
        label = pb.DType.Name(tensor.dtype) if tensor.dtype in pb.DType.values() else tensor.dtype
        raise InvalidInput(f"unknown images dtype {label}; expected DTYPE_UINT8 or DTYPE_FLOAT32")
    return core.decode(tensor.data, name, tensor.shape)


def model_ref(request: pb.PredictRequest | pb.GetModelRequest) -> tuple[int | None, str | None]:
    """(version, alias) the request pins; (None, None) for the default model."""
    which = request.WhichOneof("model")
    if which == "version":
        if request.version <= 0:
            raise InvalidInput(
                f"version must be a positive registry version, got {request.version}"
            )
        return int(request.version), None
    if which == "alias":
        if not request.alias:
            raise InvalidInput("alias must not be empty")
        return None, request.alias
    return None, None


def top_k_of(request: pb.PredictRequest, n_classes: int) -> int | None:
    if not request.HasField("top_k"):
        return None
    if not 1 <= request.top_k <= n_classes:
        raise InvalidInput(f"top_k must be between 1 and {n_classes}, got {request.top_k}")
    return int(request.top_k)


def to_response(answer: Answer, top_k: int | None, request_id: str) -> pb.PredictResponse:
    """Labels + probabilities tensor (all classes, or the best top_k with their classes)."""
    probabilities = answer.probabilities
    classes: list[int] = []
    if top_k is not None:
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]  # (n, k)
        probabilities = np.take_along_axis(probabilities, order, axis=1)
        classes = order.ravel().tolist()
    tensor = pb.Tensor(
        data=np.ascontiguousarray(probabilities, dtype="<f4").tobytes(),
        dtype=pb.DTYPE_FLOAT32,
        shape=probabilities.shape,
    )
    return pb.PredictResponse(
        labels=answer.labels.tolist(),
        probabilities=tensor,
        classes=classes,
        model=answer.model.name,
        version=answer.model.version,
        request_id=request_id,
    )


def to_model_info(info: VersionInfo) -> pb.ModelInfo:
    """A registry version's description; metrics keeps the manifest's scalar test metrics."""
    manifest = info.manifest
    metrics = {
        key: float(value)
        for key, value in (manifest.get("metrics") or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
    message = pb.ModelInfo(
        name=info.name,
        version=info.version,
        aliases=sorted(alias for alias, target in info.aliases.items() if target == info.version),
        layer_sizes=[int(n) for n in manifest.get("layer_sizes") or ()],
        metrics=metrics,
        created_at=str(manifest.get("created_at", "")),
        serving=info.serving,
        manifest_json=json.dumps(manifest, sort_keys=True, default=str),
    )
    if info.loaded_at is not None:
        message.loaded_at.FromNanoseconds(int(info.loaded_at.timestamp() * 1e9))
    return message

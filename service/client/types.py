"""Plain result types of the digits client: predictions, model descriptions and service errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

from service.generated.digits.v1 import digits_pb2 as pb


@dataclass(frozen=True)
class Feedback:
    """The server's verdict on one label: the version that answered, its class, and if right."""

    version: int
    predicted: int
    correct: bool


@dataclass(frozen=True)
class Prediction:
    """One batch's answer: labels (N,), probabilities (N, 10) (or (N, k) with top_k)."""

    labels: NDArray[np.int64]
    probabilities: NDArray[np.float32]
    model: str
    version: int
    classes: NDArray[np.int64] | None = None  # (N, k) class of each probability, only with top_k
    request_id: str = ""

    @classmethod
    def from_pb(cls, response: pb.PredictResponse) -> Prediction:
        tensor = response.probabilities
        shape = tuple(int(d) for d in tensor.shape)
        probabilities = np.frombuffer(tensor.data, dtype="<f4").reshape(shape).astype(np.float32)
        classes = None
        if len(response.classes):
            classes = np.asarray(response.classes, dtype=np.int64).reshape(shape)
        return cls(
            labels=np.asarray(response.labels, dtype=np.int64),
            probabilities=probabilities,
            model=response.model,
            version=int(response.version),
            classes=classes,
            request_id=response.request_id,
        )


@dataclass(frozen=True)
class ModelInfo:
    """A model version as the server describes it (GetModel / ListModels)."""

    name: str
    version: int
    aliases: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    metrics: dict[str, float]
    created_at: str
    loaded_at: datetime | None  # None when the server has not loaded this version
    serving: bool
    manifest: dict[str, Any] = field(default_factory=dict)


def model_info_from_pb(info: pb.ModelInfo) -> ModelInfo:
    loaded_at = info.loaded_at.ToDatetime() if info.HasField("loaded_at") else None
    return ModelInfo(
        name=info.name,
        version=int(info.version),
        aliases=tuple(info.aliases),
        layer_sizes=tuple(int(n) for n in info.layer_sizes),
        metrics=dict(info.metrics),
        created_at=info.created_at,
        loaded_at=loaded_at,
        serving=info.serving,
        manifest=json.loads(info.manifest_json) if info.manifest_json else {},
    )


class ServiceError(Exception):
    """A failed call: `code` is the gRPC status, `details` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> ServiceError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        return cls(code, details or "")

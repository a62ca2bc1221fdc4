"""DigitsClient: a small Python client for the digits.v1 DigitClassifier gRPC service."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from numpy.typing import ArrayLike

from core.config import IMAGE_SIDE, N_PIXELS
from service.client.types import (
    Feedback,
    ModelInfo,
    Prediction,
    ServiceError,
    model_info_from_pb,
)
from service.generated.digits.v1 import digits_pb2 as pb
from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc

__all__ = [
    "DigitsClient",
    "ModelInfo",
    "Prediction",
    "ServiceError",
    "encode_images",
    "tls_credentials",
]

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_MAX_HEADER_ID = 128  # characters of an x-request-id header the server reads (calls.request_id_of)


def encode_images(images: ArrayLike) -> pb.Tensor:
    """Pack uint8 (0..255) or float (0..1) images (N, 28, 28) / (N, 784) into a wire tensor.

    A single image (28, 28) or (784,) is sent as a batch of one. Floats travel as float32.
    """
    array = np.asarray(images)
    if array.shape in ((IMAGE_SIDE, IMAGE_SIDE), (N_PIXELS,)):
        array = array.reshape(1, *array.shape)
    if array.ndim not in (2, 3) or array.shape[1:] not in ((IMAGE_SIDE, IMAGE_SIDE), (N_PIXELS,)):
        raise ValueError(f"images must have shape (N, 28, 28) or (N, 784), got {array.shape}")
    if array.dtype == np.uint8:
        dtype = pb.DTYPE_UINT8
    elif array.dtype.kind == "f":
        array = array.astype("<f4", copy=False)
        dtype = pb.DTYPE_FLOAT32
    elif array.dtype.kind in "iu" and _in_pixel_range(array):
        array = array.astype(np.uint8)
        dtype = pb.DTYPE_UINT8
    else:
        raise ValueError(f"images must be uint8 0..255 or floats in [0, 1], got {array.dtype}")
    data = np.ascontiguousarray(array).tobytes()
    return pb.Tensor(data=data, dtype=dtype, shape=array.shape)


def _in_pixel_range(array: np.ndarray) -> bool:
    return array.size == 0 or bool(array.min() >= 0 and array.max() <= 255)


def tls_credentials(
    ca: bytes | None = None, cert: bytes | None = None, key: bytes | None = None
) -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM bytes; pass cert and key as well for mutual TLS."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


class DigitsClient:
    """Blocking client; thread-safe (one channel shared by all calls). Use as a context manager."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = 10.0,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        load_balancing: str = "round_robin",
    ) -> None:
        """``target`` is any gRPC target: ``host:port``, ``dns:///host:port`` (every address
        the name resolves to, e.g. a headless Service) or ``ipv4:10.0.0.1:50051,10.0.0.2:50051``.
        ``load_balancing`` "round_robin" spreads calls over all resolved addresses (gRPC's
        default, "pick_first", sends everything to one)."""
        balancing = json.dumps({"loadBalancingConfig": [{load_balancing: {}}]})
        channel_options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.service_config", balancing),
            *options,
        ]
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        self._stub = pb_grpc.DigitClassifierStub(self._channel)
        self._timeout = timeout
        self.target = target

    def predict(
        self,
        images: ArrayLike,
        version: int | None = None,
        alias: str | None = None,
        top_k: int | None = None,
        request_id: str | None = None,
        routing_key: str | None = None,
    ) -> Prediction:
        """Classify a batch; `version` or `alias` pin the model (default: production alias).

        During a canary, requests with the same `routing_key` (else `request_id`) always get the
        same version; without either the server picks at random.
        """
        request = _request(images, version, alias, top_k, request_id, routing_key)
        # Also a header, for proxies that trace by x-request-id, when it can be one: the message
        # carries any id (it wins on the server), but a header must be printable ASCII, and one
        # of 16 KiB or more fails the call (RESOURCE_EXHAUSTED); the server reads 128 characters.
        metadata = (
            (("x-request-id", request_id),) if request_id and _header_safe(request_id) else None
        )
        try:
            response = self._stub.Predict(request, timeout=self._timeout, metadata=metadata)
        except grpc.RpcError as err:
            raise ServiceError.from_rpc(err) from err
        return Prediction.from_pb(response)

    def predict_stream(
        self,
        batches: Iterable[ArrayLike],
        version: int | None = None,
        alias: str | None = None,
        top_k: int | None = None,
        routing_key: str | None = None,
    ) -> Iterator[Prediction]:
        """Classify many batches over one bidirectional stream; yields answers in order.

        During a canary the whole stream stays on one version: every message carries
        `routing_key`, by default one random key per stream (the messages' request ids, "0",
        "1", ..., would otherwise send the n-th message of every stream the same way).
        """
        counter = itertools.count()
        key = routing_key or uuid.uuid4().hex
        requests = (
            _request(batch, version, alias, top_k, str(next(counter)), key) for batch in batches
        )
        try:
            for response in self._stub.PredictStream(requests):
                yield Prediction.from_pb(response)
        except grpc.RpcError as err:
            raise ServiceError.from_rpc(err) from err

    def feedback(self, request_id: str, label: int, index: int = 0) -> Feedback:
        """Report the true `label` of image `index` of an earlier answer (its `request_id`).

        Raises ServiceError: NOT_FOUND for an id the server does not remember, INVALID_ARGUMENT
        for a label outside 0-9 or an index past the request's images.
        """
        request = pb.FeedbackRequest(request_id=request_id, label=int(label), index=int(index))
        try:
            reply = self._stub.Feedback(request, timeout=self._timeout)
        except grpc.RpcError as err:
            raise ServiceError.from_rpc(err) from err
        return Feedback(version=reply.version, predicted=reply.predicted, correct=reply.correct)

    def feedback_stream(self, labels: Iterable[tuple[str, int] | tuple[str, int, int]]) -> int:
        """Report many (request_id, label[, index]) over one stream; returns how many the model
        had right. The first bad one raises ServiceError (those before it are counted)."""
        requests = (
            pb.FeedbackRequest(request_id=item[0], label=int(item[1]),
                               index=int(item[2]) if len(item) > 2 else 0)  # type: ignore[misc]
            for item in labels
        )  # fmt: skip
        try:
            reply = self._stub.FeedbackStream(requests, timeout=self._timeout)
        except grpc.RpcError as err:
            raise ServiceError.from_rpc(err) from err
        return int(reply.correct)

    def get_model(self, version: int | None = None, alias: str | None = None) -> ModelInfo:
        """Describe one model version (default: the one served without a model reference)."""
        request = pb.GetModelRequest()
        if version is not None:
            request.version = version
        elif alias is not None:
            request.alias = alias
        try:
            return model_info_from_pb(self._stub.GetModel(request, timeout=self._timeout))
        except grpc.RpcError as err:
            raise ServiceError.from_rpc(err) from err

    def list_models(self) -> list[ModelInfo]:
        """Every version of the served model in the registry, ascending."""
        try:
            response = self._stub.ListModels(pb.ListModelsRequest(), timeout=self._timeout)
        except grpc.RpcError as err:
            raise ServiceError.from_rpc(err) from err
        return [model_info_from_pb(info) for info in response.models]

    def health(self, service: str = "") -> str:
        """grpc.health.v1 status name: "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN"."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            request = health_pb2.HealthCheckRequest(service=service)
            reply = stub.Check(request, timeout=self._timeout)  # type: ignore[attr-defined]  # the stubs give HealthStub no methods
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:  # Check's answer for an unknown service
                return "SERVICE_UNKNOWN"
            raise ServiceError.from_rpc(err) from err
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> DigitsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _header_safe(value: str) -> bool:
    """Whether `value` can travel as a gRPC header value as is (printable ASCII, <= 128)."""
    return len(value) <= _MAX_HEADER_ID and value.isascii() and value.isprintable()


def _request(
    images: ArrayLike,
    version: int | None,
    alias: str | None,
    top_k: int | None,
    request_id: str | None,
    routing_key: str | None = None,
) -> pb.PredictRequest:
    if version is not None and alias is not None:
        raise ValueError("pass either version or alias, not both")
    request = pb.PredictRequest(
        images=encode_images(images), request_id=request_id or "", routing_key=routing_key or ""
    )
    if version is not None:
        request.version = int(version)
    elif alias is not None:
        request.alias = alias
    if top_k is not None:
        request.top_k = int(top_k)
    return request

"""DigitClassifierServicer: digits.v1 messages in, ServingCore call, digits.v1 messages out."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from core.registry import NotFoundError, RegistryError
from service.converters import model_ref, to_model_info, to_pixels, to_response, top_k_of
from service.errors import (
    InvalidInput,
    ModelUnusable,
    NotFound,
    Overloaded,
    handle_errors,
    request_id_of,
)
from service.generated.digits.v1 import digits_pb2 as pb
from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc
from service.serving import ServingCore

__all__ = ["DigitClassifierServicer", "register"]


class DigitClassifierServicer(pb_grpc.DigitClassifierServicer):
    """The digits.v1 adapter; errors become status codes in `handle_errors`."""

    def __init__(self, core: ServingCore, *, max_streams: int = 16) -> None:
        self.core = core
        self.observer = core.metrics
        # Each open stream holds a handler thread for its lifetime; capping them keeps threads
        # free for unary calls and health checks.
        self._stream_slots = threading.BoundedSemaphore(max_streams)
        self.max_streams = max_streams

    @handle_errors("Predict")
    def Predict(
        self, request: pb.PredictRequest, context: grpc.ServicerContext
    ) -> pb.PredictResponse:
        return self._predict(request, context, request_id_of(context))

    @handle_errors("PredictStream")
    def PredictStream(
        self, request_iterator: Iterator[pb.PredictRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PredictResponse]:
        if not self._stream_slots.acquire(blocking=False):
            raise Overloaded(f"too many open PredictStream calls (limit {self.max_streams})")
        try:
            stream_id = request_id_of(context)
            for request in request_iterator:
                yield self._predict(request, context, stream_id)
        finally:
            self._stream_slots.release()

    @handle_errors("GetModel")
    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.ModelInfo:
        version, alias = model_ref(request)
        repository = self.core.repository
        if version is None and alias is None:
            version = self.core.model().version  # ModelNotReady before the first load
        elif version is None:
            version = repository.resolve_alias(str(alias))
        with _registry_errors():
            manifest = repository.registry.get(repository.name, version).manifest
            aliases = repository.registry.aliases(repository.name)
        return self._info(version, manifest, aliases)

    @handle_errors("ListModels")
    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        repository = self.core.repository
        with _registry_errors():
            versions = repository.registry.list_versions(repository.name)
            aliases = repository.registry.aliases(repository.name)
        models = [self._info(mv.version, mv.manifest, aliases) for mv in versions]
        return pb.ListModelsResponse(models=models, aliases=aliases)

    def _predict(
        self, request: pb.PredictRequest, context: grpc.ServicerContext, request_id: str
    ) -> pb.PredictResponse:
        if not request.HasField("images"):
            raise InvalidInput("the request has no images")
        pixels = to_pixels(self.core, request.images)
        version, alias = model_ref(request)
        top_k = top_k_of(request, n_classes=10)
        answer = self.core.predict(pixels, version=version, alias=alias, timeout=_timeout(context))
        return to_response(answer, top_k, request.request_id or request_id)

    def _info(
        self, version: int, manifest: dict[str, Any], aliases: dict[str, int]
    ) -> pb.ModelInfo:
        loaded = self.core.repository.loaded(version)
        current = self.core.repository.current
        return to_model_info(
            self.core.repository.name,
            version,
            manifest,
            aliases=aliases,
            loaded_at_ns=int(loaded.loaded_at.timestamp() * 1e9) if loaded else None,
            serving=current is not None and current.version == version,
        )


def _timeout(context: grpc.ServicerContext) -> float | None:
    """Seconds left before the client's deadline; None without one (grpc reports a huge value)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else max(float(remaining), 0.0)


@contextlib.contextmanager
def _registry_errors() -> Iterator[None]:
    """Turn the registry's lookup errors into PredictErrors (NOT_FOUND / FAILED_PRECONDITION)."""
    try:
        yield
    except NotFoundError as err:
        raise NotFound(str(err)) from None
    except RegistryError as err:
        raise ModelUnusable(str(err)) from None


def register(server: grpc.Server, core: ServingCore, *, max_streams: int = 16) -> None:
    """Add the digits.v1 servicer to `server`."""
    servicer = DigitClassifierServicer(core, max_streams=max_streams)
    pb_grpc.add_DigitClassifierServicer_to_server(servicer, server)

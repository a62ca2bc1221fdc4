"""Open Inference Protocol (KServe V2) adapter: V2 messages in, ServingCore call, V2 out."""

from __future__ import annotations

from typing import Any

import grpc

from core.version import package_version
from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.generated.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from service.rpc.calls import handle_errors, seconds_left
from service.rpc.v2_converters import (
    requested_outputs,
    tensor_metadata,
    to_images,
    to_infer_response,
)
from service.serving.core import ServingCore
from service.serving.errors import PredictError
from service.serving.v2_model import PLATFORM, SERVER_NAME, check_model_name, model_versions
from service.serving.v2_model import model_ref as _model_ref

__all__ = ["V2_SERVICE", "InferenceServicer", "register_v2"]

V2_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService` over the shared core, for a grpc.aio server (async
    handlers on its event loop); handle_errors maps the errors."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core
        self.observer = core.metrics

    @handle_errors("ServerLive")
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @handle_errors("ServerReady")
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.core.ready)

    @handle_errors("ModelReady")
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelReadyResponse:
        # A probe asks a yes/no question: unknown models and versions are "not ready", not errors.
        try:
            self._check_name(request.name)
            self.core.model(*_model_ref(request.version))  # loads a pinned version on demand
        except PredictError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @handle_errors("ServerMetadata")
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=package_version())

    @handle_errors("ModelMetadata")
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelMetadataResponse:
        self._check_name(request.name)
        versions = await model_versions(self.core, request.version)
        inputs, outputs = tensor_metadata()
        return pb.ModelMetadataResponse(
            name=self.core.models.name,
            versions=versions,
            platform=PLATFORM,
            inputs=inputs,
            outputs=outputs,
        )

    @handle_errors("ModelInfer")
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        self._check_name(request.model_name)
        outputs = requested_outputs(request)
        pixels = to_images(request, max_rows=self.core.max_images)
        version, alias = _model_ref(request.model_version)
        answer = await self.core.predict_async(
            pixels, version=version, alias=alias, timeout=seconds_left(context)
        )
        return to_infer_response(
            answer.probabilities,
            answer.labels,
            outputs,
            model_name=answer.model.name,
            model_version=str(answer.model.version),
            request_id=request.id,
        )

    def _check_name(self, name: str) -> None:
        check_model_name(self.core, name)


def register_v2(server: grpc.aio.Server, core: ServingCore) -> list[str]:
    """Add the Open Inference Protocol servicer to `server`; returns its full service name."""
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(core), server)
    return [V2_SERVICE]

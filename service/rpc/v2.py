"""Open Inference Protocol (KServe V2) adapter: V2 messages in, ServingCore call, V2 out."""

from __future__ import annotations

import time
from typing import Any

import grpc

from core.config import N_CLASSES
from core.version import package_version
from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.generated.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from service.rpc.calls import (
    client_gone,
    handle_errors,
    report_failure,
    request_id_of,
    seconds_left,
)
from service.rpc.v2_converters import (
    requested_outputs,
    tensor_metadata,
    to_images,
    to_infer_response,
)
from service.rpc.v2_extensions import EXTENSIONS, model_config, model_statistics
from service.rpc.v2_parameters import class_counts, refuse_unsupported
from service.serving.core import ServingCore
from service.serving.errors import PredictError
from service.serving.statistics import VersionStatistics
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
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=package_version(), extensions=EXTENSIONS
        )

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

    @handle_errors("ModelConfig")
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelConfigResponse:
        await self._version(request.name, request.version)
        batcher = self.core.loop_batcher
        delay_us = round(batcher.max_delay_s * 1e6) if batcher.enabled else None
        config = model_config(
            self.core.models.name,
            PLATFORM,
            max_batch_size=self.core.max_images,
            batching_delay_us=delay_us,
        )
        return pb.ModelConfigResponse(config=config)

    @handle_errors("ModelStatistics")
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelStatisticsResponse:
        # Triton: an empty name asks for every model, an empty version for every version; the
        # served version is listed before its first inference too (perf_analyzer looks it up).
        totals = self.core.statistics.snapshot()
        current = self.core.models.current
        if current is not None and all(t.version != current.version for t in totals):
            totals.append(VersionStatistics(current.name, current.version))
        if request.name or request.version:
            version = await self._version(request.name or self.core.models.name, request.version)
            if version is not None:
                totals = [t for t in totals if t.version == version] or [
                    VersionStatistics(self.core.models.name, version)
                ]
        return pb.ModelStatisticsResponse(model_stats=model_statistics(totals))

    @handle_errors("ModelInfer", message_id=lambda request: request.id)
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        # Reported to the core's monitoring like digits.v1's Predict (prediction log; feedback
        # for requests that carry an id).
        start = time.perf_counter()
        request_id = request.id or request_id_of(context)
        pixels = None
        try:
            self._check_name(request.model_name)
            refuse_unsupported(request)  # a parameter is honoured or refused, never dropped
            outputs = requested_outputs(request)
            counts = class_counts(request, n_classes=N_CLASSES)
            pixels = to_images(request, max_rows=self.core.max_images)
            version, alias = _model_ref(request.model_version)
            answer = await self.core.predict_async(
                pixels,
                version=version,
                alias=alias,
                timeout=seconds_left(context),
                gone=client_gone(context),
            )
        except Exception as err:
            report_failure(self.core.monitoring, "ModelInfer", request_id, start, pixels, err)
            raise
        self.core.monitoring.answered("ModelInfer", request_id, start, pixels, answer)
        return to_infer_response(
            answer.probabilities,
            answer.labels,
            outputs,
            model_name=answer.model.name,
            model_version=str(answer.model.version),
            request_id=request.id,
            class_counts=counts,
        )

    async def _version(self, name: str, version_ref: str) -> int | None:
        """The version `version_ref` names (None: the default); NotFound for another model or
        an unknown version or alias."""
        self._check_name(name)
        await model_versions(self.core, version_ref)  # NotFound unless it exists
        number, alias = _model_ref(version_ref)
        if alias is not None:
            number = (await self.core.describe(alias=alias)).version
        return number

    def _check_name(self, name: str) -> None:
        check_model_name(self.core, name)


def register_v2(server: grpc.aio.Server, core: ServingCore) -> list[str]:
    """Add the Open Inference Protocol servicer to `server`; returns its full service name."""
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(core), server)
    return [V2_SERVICE]

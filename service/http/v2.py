"""Open Inference Protocol (KServe V2) REST binding: HTTP requests in, ServingCore call, JSON out.

The REST twin of service/rpc/v2.py over the same core: same model, versions, validation, errors
(as HTTP codes) and readiness. Endpoints (KServe V2 REST):

    GET  /v2/health/live                              200 while the process answers
    GET  /v2/health/ready                             200 once a model is loaded, else 503
    GET  /v2                                          server metadata
    GET  /v2/models/{name}[/versions/{v}]             model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready       200 when that model/version can serve now
    POST /v2/models/{name}[/versions/{v}]/infer       inference (JSON or binary tensor data)
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.version import package_version
from service.http.body import read_body
from service.http.endpoint import endpoint
from service.http.errors import status_of
from service.http.v2_json import encode_infer_response, parse_infer_request
from service.serving.core import ServingCore
from service.serving.errors import ModelNotReady, PredictError
from service.serving.v2_model import (
    PLATFORM,
    SERVER_NAME,
    TENSOR_METADATA,
    check_model_name,
    model_ref,
    model_versions,
)

__all__ = ["V2Rest"]

_REST = "ModelInferREST"  # the prediction log's method name for V2 REST inference
_JSON = "application/json"
_BINARY = "application/octet-stream"  # a JSON header then raw tensors (binary data extension)


class V2Rest:
    """The V2 REST endpoints over `core`; `draining` turns readiness off during shutdown."""

    def __init__(self, core: ServingCore, *, max_body_bytes: int) -> None:
        self.core = core
        self.observer = core.metrics
        self.max_body_bytes = max_body_bytes
        self.draining = False

    def routes(self) -> list[Route]:
        model = "/v2/models/{name}"
        versioned = "/v2/models/{name}/versions/{version}"
        return [
            Route("/v2/health/live", self.server_live, methods=["GET"]),
            Route("/v2/health/ready", self.server_ready, methods=["GET"]),
            Route("/v2", self.server_metadata, methods=["GET"]),
            *(Route(path, self.model_metadata, methods=["GET"]) for path in (model, versioned)),
            *(Route(f"{p}/ready", self.model_ready, methods=["GET"]) for p in (model, versioned)),
            *(Route(f"{p}/infer", self.model_infer, methods=["POST"]) for p in (model, versioned)),
        ]

    @property
    def ready(self) -> bool:
        """Ready once a default model is loaded, until shutdown begins (gRPC health's rule)."""
        return self.core.ready and not self.draining

    @endpoint("ServerLive")
    async def server_live(self, request: Request) -> Response:
        return _json({"live": True})

    @endpoint("ServerReady")
    async def server_ready(self, request: Request) -> Response:
        return _json({"ready": self.ready}, 200 if self.ready else 503)

    @endpoint("ServerMetadata")
    async def server_metadata(self, request: Request) -> Response:
        return _json({"name": SERVER_NAME, "version": package_version(), "extensions": []})

    @endpoint("ModelMetadata")
    async def model_metadata(self, request: Request) -> Response:
        check_model_name(self.core, request.path_params["name"])
        version = request.path_params.get("version", "")
        versions = await model_versions(self.core, version)  # registry reads off the loop
        inputs, outputs = (
            [{"name": n, "datatype": d, "shape": list(s)} for n, d, s in tensors]
            for tensors in TENSOR_METADATA
        )
        return _json(
            {
                "name": self.core.models.name,
                "versions": versions,
                "platform": PLATFORM,
                "inputs": inputs,
                "outputs": outputs,
            }
        )

    @endpoint("ModelReady")
    async def model_ready(self, request: Request) -> Response:
        # The status code is the answer (tritonclient reads 200 as ready); the body says why not.
        check_model_name(self.core, request.path_params["name"])
        if self.draining:
            raise ModelNotReady("the server is shutting down")
        version, alias = model_ref(request.path_params.get("version", ""))
        if self.core.models.in_memory(version, alias) is None:  # load a pinned one, off the loop
            await asyncio.to_thread(self.core.models.get, version, alias)
        return _json({"name": self.core.models.name, "ready": True})

    @endpoint("ModelInfer")
    async def model_infer(self, request: Request) -> Response:
        # Reported to the core's monitoring like the gRPC adapters (prediction log, feedback by
        # the request's "id" or X-Request-Id); a failure's status is its HTTP status code here.
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id", "")[:128]
        pixels = None
        try:
            check_model_name(self.core, request.path_params["name"])
            body = await read_body(request, self.max_body_bytes)
            parsed = parse_infer_request(
                body,
                request.headers.get("inference-header-content-length"),
                max_rows=self.core.max_images,
            )
            pixels, request_id = parsed.pixels, parsed.request_id or request_id
            version, alias = model_ref(request.path_params.get("version", ""))
            answer = await self.core.predict_async(parsed.pixels, version=version, alias=alias)
        except Exception as err:
            status = status_of(err) if isinstance(err, PredictError) else 500
            request_id = request_id or os.urandom(6).hex()
            self.core.monitoring.failed(_REST, request_id, start, pixels, str(status), str(err))
            raise
        self.core.monitoring.answered(_REST, request_id or os.urandom(6).hex(), start,
                                      parsed.pixels, answer)  # fmt: skip
        content, header_length = encode_infer_response(
            parsed,
            answer.probabilities,
            answer.labels,
            model_name=answer.model.name,
            model_version=str(answer.model.version),
        )
        if header_length is None:
            return Response(content, media_type=_JSON)
        headers = {"Inference-Header-Content-Length": str(header_length)}
        return Response(content, media_type=_BINARY, headers=headers)


def _json(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=_JSON)

"""The drawing page's endpoint: a picture in, the 28x28 model input and the ten probabilities out.

POST /v1/draw takes a PNG/JPEG body (the page sends its canvas) and prepares it with
service.client.images.load_bytes, the code path `digits predict` uses for files, so a drawn 7 and
a PNG of the same 7 get the same answer. The page itself is static (service/http/static/).
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.client.images import load_bytes
from service.http.body import read_body
from service.http.endpoint import endpoint
from service.http.errors import status_of
from service.serving.core import ServingCore
from service.serving.errors import InvalidInput, PredictError

__all__ = ["DrawEndpoint"]


class DrawEndpoint:
    """POST /v1/draw: `{"model_name", "model_version", "label", "probabilities", "input"}`.

    `input` is the prepared digit as 28 rows of 28 uint8 values (0 = paper, 255 = ink),
    `probabilities` the ten softmax outputs, `model_version` a string ("3") as in V2 infer; a
    blank, empty or unreadable picture is a 400 whose `error` says what the bytes are. Answers
    and failed predictions go to the server's monitoring as method "Draw" (drift, prediction
    log, feedback by X-Request-Id or a generated id).
    """

    def __init__(self, core: ServingCore, *, max_body_bytes: int) -> None:
        self.core = core
        self.observer = core.metrics
        self.max_body_bytes = max_body_bytes

    def routes(self) -> list[Route]:
        return [Route("/v1/draw", self.draw, methods=["POST"])]

    @endpoint("Draw")
    async def draw(self, request: Request) -> Response:
        body = await read_body(request, self.max_body_bytes)
        try:  # Pillow decoding and the resampling take milliseconds: off the event loop
            digit = await asyncio.to_thread(load_bytes, body, "drawing")
        except ValueError as err:
            raise InvalidInput(str(err)) from None
        start, pixels = time.perf_counter(), digit.reshape(1, -1)
        request_id = request.headers.get("x-request-id", "")[:128] or os.urandom(6).hex()
        try:
            answer = await self.core.predict_async(pixels)
        except Exception as err:
            status = status_of(err) if isinstance(err, PredictError) else 500
            self.core.monitoring.failed("Draw", request_id, start, pixels, str(status), str(err))
            raise
        self.core.monitoring.answered("Draw", request_id, start, pixels, answer)
        doc = {
            "model_name": answer.model.name,
            "model_version": str(answer.model.version),  # a string, as in V2 infer
            "label": int(answer.labels[0]),
            "probabilities": answer.probabilities[0],
            "input": np.ascontiguousarray(digit),
        }
        body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(body, media_type="application/json")

"""The HTTP edge's one mapping of PredictError to HTTP status codes, and its JSON error body.

Codes follow the canonical gRPC-to-HTTP mapping (google/rpc/code.proto), so a failure reads the
same on both bindings: INVALID_ARGUMENT 400, NOT_FOUND 404, FAILED_PRECONDITION 400,
UNAVAILABLE 503, RESOURCE_EXHAUSTED 429, DEADLINE_EXCEEDED 504; a body over the size limit is
413 (RFC 9110 15.5.14). The KServe V2 REST binding answers errors as `{"error": "<message>"}`.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from service.serving.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotReady,
    ModelUnusable,
    NotFound,
    Overloaded,
    PredictError,
)

__all__ = ["HTTP_STATUS", "BodyTooLarge", "UnsupportedMediaType", "error_response", "status_of"]


class BodyTooLarge(InvalidInput):
    """The request body is over the server's size limit (max_message_bytes)."""


class UnsupportedMediaType(InvalidInput):
    """The request body is in an encoding this server does not read (e.g. Content-Encoding)."""


HTTP_STATUS: dict[type[PredictError], int] = {
    BodyTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidInput: 400,
    NotFound: 404,
    ModelUnusable: 400,
    ModelNotReady: 503,
    Overloaded: 429,
    DeadlineExceeded: 504,
}


def status_of(err: PredictError) -> int:
    """HTTP status of a PredictError (a subclass without its own entry takes its parent's)."""
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_response(status: int, message: str) -> Response:
    """`{"error": message}` with `status` (JSON-escaped by the stdlib encoder)."""
    body = json.dumps({"error": message}).encode()
    return Response(body, status_code=status, media_type="application/json")

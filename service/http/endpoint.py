"""Per-request handling at the HTTP edge: errors to status codes and JSON, counting and timing.

The HTTP twin of service/rpc/calls.py's handle_errors: a PredictError becomes its status code
(service/http/errors.py) with `{"error": message}`; anything else is logged with its traceback
and answered 500 with a generic message; every request is counted and timed by method. Failures
are logged once with the request id (the X-Request-Id header, else a generated one).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from service.http.errors import error_response, status_of
from service.serving.errors import PredictError

__all__ = ["endpoint"]

logger = logging.getLogger("service.http")

# Ids of failed requests without an X-Request-Id: a per-process prefix and a counter.
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)
_CLIENT_GONE = 499  # nginx's code for "client closed the request": nobody reads the answer


class _Observer(Protocol):
    def observe_http(self, method: str, status: int, seconds: float) -> None: ...


class _Handler(Protocol):
    observer: _Observer


H = TypeVar("H", bound=_Handler)
Endpoint = Callable[[H, Request], Awaitable[Response]]


def endpoint(method: str) -> Callable[[Endpoint[Any]], Endpoint[Any]]:
    """Decorate an `async def (self, request) -> Response` whose object exposes `.observer`."""

    def decorate(fn: Endpoint[Any]) -> Endpoint[Any]:
        @functools.wraps(fn)
        async def handle(self: Any, request: Request) -> Response:
            start = time.perf_counter()
            status = 500
            try:
                response = await fn(self, request)
                status = response.status_code
                return response
            except PredictError as err:
                status = status_of(err)
                extra = {"method": method, "request_id": _request_id(request), "code": status}
                logger.info("request failed: %d %s", status, err, extra=extra)
                return error_response(status, str(err))
            except asyncio.CancelledError:
                status = _CLIENT_GONE
                raise
            except Exception:
                request_id = _request_id(request)
                extra = {"method": method, "request_id": request_id, "code": 500}
                logger.exception("unexpected error", extra=extra)
                message = f"internal error (request id {request_id}); details are in the server log"
                return error_response(500, message)
            finally:
                self.observer.observe_http(method, status, time.perf_counter() - start)

        return handle

    return decorate


def _request_id(request: Request) -> str:
    """The caller's X-Request-Id header, or a short generated id (as on the gRPC edge)."""
    given = request.headers.get("x-request-id")
    return given[:128] if given else f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"

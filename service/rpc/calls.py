"""Per-call handling at the gRPC edge: the one mapping of PredictError to status codes, and
what every handler reads from its call context (request id, deadline)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, TypeVar

import grpc

from service.serving.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotReady,
    ModelUnusable,
    NotFound,
    Overloaded,
    PredictError,
)

logger = logging.getLogger("service.rpc")

__all__ = [
    "STATUS_CODES",
    "handle_errors",
    "request_id_of",
    "seconds_left",
    "status_of",
]


STATUS_CODES: dict[type[PredictError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
    NotFound: grpc.StatusCode.NOT_FOUND,
    ModelUnusable: grpc.StatusCode.FAILED_PRECONDITION,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_of(err: PredictError) -> grpc.StatusCode:
    """Status code of a PredictError (subclasses inherit their parent's code)."""
    for cls in type(err).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


# Generated ids: a random per-process prefix and a counter, unique across processes and restarts
# at a fraction of os.urandom's cost (every answered request carries one).
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def request_id_of(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's x-request-id metadata, or a short generated id."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:128]
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def seconds_left(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """Seconds left before the client's deadline; None without one (grpc reports a huge value)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else max(float(remaining), 0.0)


class _Observer(Protocol):
    def observe_request(self, method: str, code: grpc.StatusCode, seconds: float) -> None: ...


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(method: str) -> Callable[[F], F]:
    """Decorate a servicer method: map errors to status codes, log once, count and time it.

    The servicer must expose `.observer` (with observe_request). PredictError details go to the
    client; any other exception is logged with its traceback and answered INTERNAL, generically.
    Works for unary methods and response-streaming generators, sync (grpc.server, or a grpc.aio
    server's migration thread pool) or async (`async def` / async generators on grpc.aio, where
    the abort is awaited and a cancelled handler is counted and logged as CANCELLED).
    """

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return _decorate_async(method, fn)

        @functools.wraps(fn)
        def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            request_id = request_id_of(context)
            code = grpc.StatusCode.OK
            try:
                return fn(self, request, context)
            except Exception as err:
                code = _code_for(err, context)
                _abort(method, request_id, err, context)
            finally:
                _finish(self.observer, method, request_id, code, start)

        @functools.wraps(fn)
        def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            request_id = request_id_of(context)
            code = grpc.StatusCode.OK
            try:
                yield from fn(self, request, context)
            except Exception as err:
                code = _code_for(err, context)
                _abort(method, request_id, err, context)
            finally:
                _finish(self.observer, method, request_id, code, start)

        return streaming if inspect.isgeneratorfunction(fn) else unary  # type: ignore[return-value]

    return decorate


def _decorate_async(method: str, fn: F) -> F:
    # Counted before the abort is awaited: grpc.aio sends the status inside abort(), so a client
    # could otherwise read the metrics before this request is in them.
    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        start = time.perf_counter()  # the request id is only looked up when it is logged
        try:
            response = await fn(self, request, context)
        except asyncio.CancelledError:
            _count_cancelled(self.observer, method, context, start)
            raise
        except Exception as err:
            await _count_and_abort(self.observer, method, err, context, start)
        _finish(self.observer, method, None, grpc.StatusCode.OK, start, context)
        return response

    @functools.wraps(fn)
    async def streaming(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        start = time.perf_counter()  # the request id is only looked up when it is logged
        try:
            async for response in fn(self, request, context):
                yield response
        except asyncio.CancelledError:
            _count_cancelled(self.observer, method, context, start)
            raise
        except Exception as err:
            await _count_and_abort(self.observer, method, err, context, start)
        _finish(self.observer, method, None, grpc.StatusCode.OK, start, context)

    return streaming if inspect.isasyncgenfunction(fn) else unary  # type: ignore[return-value]


def _count_cancelled(observer: _Observer, method: str, context: Any, start: float) -> None:
    request_id = request_id_of(context)
    _finish(observer, method, request_id, _cancelled(method, request_id), start)


async def _count_and_abort(
    observer: _Observer, method: str, err: Exception, context: Any, start: float
) -> None:
    """Log the error once, count it, then end the call with its status code (grpc.aio)."""
    request_id = request_id_of(context)
    code, details = _log(method, request_id, err, context)
    _finish(observer, method, request_id, code, start)
    await context.abort(code, details)


def _cancelled(method: str, request_id: str) -> grpc.StatusCode:
    extra = {"method": method, "request_id": request_id, "code": "CANCELLED"}
    logger.info("request abandoned by the client", extra=extra)
    return grpc.StatusCode.CANCELLED


def _finish(
    observer: _Observer,
    method: str,
    request_id: str | None,
    code: grpc.StatusCode,
    start: float,
    context: Any = None,
) -> None:
    """Count and time the request; the access log (DEBUG) names its id (looked up if None)."""
    seconds = time.perf_counter() - start
    observer.observe_request(method, code, seconds)
    if logger.isEnabledFor(logging.DEBUG):  # the access log: off at the default INFO level
        request_id = request_id if request_id is not None else request_id_of(context)
        extra = {"method": method, "request_id": request_id, "code": code.name}
        logger.debug("%s %s in %.3f ms", method, code.name, seconds * 1e3, extra=extra)


def _code_for(err: Exception, context: Any) -> grpc.StatusCode:
    if isinstance(err, PredictError):
        return status_of(err)
    # An inactive context means the client cancelled or its deadline passed: nobody listens.
    if hasattr(context, "is_active"):  # grpc.server
        active = context.is_active()
    else:  # grpc.aio (a sync handler's context there has neither: assume someone listens)
        active = not context.done() if hasattr(context, "done") else True
    return grpc.StatusCode.INTERNAL if active else grpc.StatusCode.CANCELLED


def _abort(method: str, request_id: str, err: Exception, context: grpc.ServicerContext) -> None:
    """Log err once and abort the RPC (context.abort raises, ending the handler)."""
    context.abort(*_log(method, request_id, err, context))


def _log(method: str, request_id: str, err: Exception, context: Any) -> tuple[grpc.StatusCode, str]:
    """Log err once; the status code and the details to send."""
    code = _code_for(err, context)
    extra = {"method": method, "request_id": request_id, "code": code.name}
    if isinstance(err, PredictError):
        details = str(err)
        logger.info("request failed: %s %s", code.name, details, extra=extra)
    elif code == grpc.StatusCode.CANCELLED:
        details = "request cancelled"
        logger.info("request abandoned by the client", extra=extra)
    else:
        details = f"internal error (request id {request_id}); details are in the server log"
        logger.exception("unexpected error", extra=extra)
    return code, details

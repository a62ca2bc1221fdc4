"""Per-call handling at the gRPC edge: the one mapping of PredictError to status codes, and
what every handler reads from its call context (request id, deadline, whether anyone listens).

Every call a servicer method decorated with `handle_errors` receives ends in exactly one counted
outcome (digits_requests_total) and, unless it is OK, one log line naming the caller's request
id: an error, a client that cancelled or closed its channel (also while the server waited to
write a stream answer: the generator is closed with GeneratorExit), or a deadline. Calls that
end before their handler runs are counted by service.rpc.accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import grpc

from service.serving.errors import (
    Cancelled,
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
    "REQUEST_ID_KEY",
    "STATUS_CODES",
    "Context",
    "Observer",
    "client_gone",
    "count_gone",
    "handle_errors",
    "report_failure",
    "request_id_of",
    "routing_key_of",
    "seconds_left",
    "status_of",
]

Context = grpc.aio.ServicerContext[Any, Any]

REQUEST_ID_KEY = "x-request-id"
"""Metadata key of the caller's request id; every error carries it back as trailing metadata."""

STATUS_CODES: dict[type[PredictError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
    NotFound: grpc.StatusCode.NOT_FOUND,
    ModelUnusable: grpc.StatusCode.FAILED_PRECONDITION,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Cancelled: grpc.StatusCode.CANCELLED,
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


def request_id_of(context: Context, message_id: str = "") -> str:
    """The caller's id: `message_id` (from the request message) if set, else the x-request-id
    metadata, else a short generated id. At most 128 characters."""
    if message_id:
        return message_id[:128]
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:128]
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def routing_key_of(
    context: Context,
    routing_key: str = "",
    request_id: str = "",
) -> str | None:
    """The canary routing key, first found: the message's ``routing_key``, the x-routing-key
    metadata, the message's ``request_id``, the x-request-id metadata; None = route at random."""
    if routing_key:
        return routing_key
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if key in ("x-routing-key", "x-request-id") and value:
            found.setdefault(key, str(value)[:128])
    return found.get("x-routing-key") or request_id or found.get("x-request-id")


def report_failure(
    monitoring: Any,
    method: str,
    request_id: str,
    start: float,
    pixels: Any,
    err: BaseException,
) -> None:
    """Tell the server's Monitoring (service.serving.monitoring) a prediction failed, with the
    status code name the client gets (INTERNAL for anything that is not a PredictError)."""
    code = status_of(err) if isinstance(err, PredictError) else grpc.StatusCode.INTERNAL
    monitoring.failed(method, request_id, start, pixels, code.name, str(err))


def seconds_left(context: Context) -> float | None:
    """Seconds left before the client's deadline; None without one (grpc reports a huge value)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else max(float(remaining), 0.0)


def client_gone(context: Context) -> Callable[[], bool]:
    """A check the serving core calls before a forward pass: has the client cancelled?"""
    return context.cancelled


class Observer(Protocol):
    """What handle_errors counts requests with (ServiceMetrics)."""

    def observe_request(self, method: str, code: grpc.StatusCode, seconds: float) -> None: ...


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(method: str, message_id: Callable[[Any], str] | None = None) -> Callable[[F], F]:
    """Decorate an `async def` servicer method or async generator of a grpc.aio server: map
    errors to status codes, log once under the caller's request id, count and time the call.

    The servicer must expose `.observer` (with observe_request). `message_id(request)` reads the
    request id a unary request message may carry (it wins over the x-request-id metadata); a
    PredictError may carry its own `request_id` (a stream's failing message). PredictError
    details go to the client; any other exception is logged with its traceback and answered
    INTERNAL, generically. A client that leaves (cancel, closed channel, connection lost) is
    counted and logged as CANCELLED.
    """

    def decorate(fn: F) -> F:
        if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            raise TypeError(f"handle_errors({method!r}) needs an async def or async generator")
        if inspect.isasyncgenfunction(fn):
            return _streaming(method, fn)
        return _unary(method, fn, message_id or (lambda request: ""))

    return decorate


def _unary(method: str, fn: F, message_id: Callable[[Any], str]) -> F:
    # Counted before the abort is awaited: grpc.aio sends the status inside abort(), so a client
    # could otherwise read the metrics before this request is in them.
    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: Context) -> Any:
        start = time.perf_counter()  # the request id is only looked up when it is logged
        try:
            response = await fn(self, request, context)
        except asyncio.CancelledError:
            _count_gone(self.observer, method, context, start, message_id(request))
            raise
        except Exception as err:
            await _count_and_abort(self.observer, method, err, context, start, message_id(request))
        _finish(self.observer, method, grpc.StatusCode.OK, start, context, message_id(request))
        return response

    return unary  # type: ignore[return-value]


def _streaming(method: str, fn: F) -> F:
    @functools.wraps(fn)
    async def streaming(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
        start = time.perf_counter()
        # aclosing: the servicer's generator (and its finally: stream slots, reader task) is
        # closed here and now, not whenever the garbage collector finalises it.
        answers = fn(self, request, context)
        async with contextlib.aclosing(answers):
            try:
                async for response in answers:
                    yield response
            except (asyncio.CancelledError, GeneratorExit):
                # GeneratorExit: grpc.aio closed the stream while it waited to write an answer.
                _count_gone(self.observer, method, context, start)
                raise
            except Exception as err:
                await _count_and_abort(self.observer, method, err, context, start)
                return
        # The requests may have ended because the call did (closed channel, deadline) and grpc
        # may not know it yet: the outcome is counted once the call is over and its fate known.
        # A deadline is known by the clock. A client's cancel is known only if it cancelled
        # this task first: grpc.aio's cancelled() is False for it (grpc/grpc#36193), so a
        # cancel landing just after the last request was read is counted OK.
        observer = self.observer

        def counted(ctx: Context) -> None:
            if context.cancelled() or seconds_left(context) == 0.0:
                _count_gone(observer, method, context, start)
            else:
                _finish(observer, method, grpc.StatusCode.OK, start, context)

        context.add_done_callback(counted)  # type: ignore[arg-type]  # (stubs: a class, not a Protocol)

    return streaming  # type: ignore[return-value]


def count_gone(observer: Observer, method: str, context: Context) -> None:
    """Count and log a call whose client left before its handler could run."""
    _count_gone(observer, method, context, time.perf_counter())


def _count_gone(
    observer: Observer, method: str, context: Any, start: float, message_id: str = ""
) -> None:
    """The client left (cancelled, channel closed, connection lost) or its deadline passed."""
    expired = seconds_left(context) == 0.0
    code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    request_id = request_id_of(context, message_id)
    extra = {"method": method, "request_id": request_id, "code": code.name}
    message = "deadline passed" if expired else "request abandoned by the client"
    logger.info(message, extra=extra)
    _finish(observer, method, code, start, request_id=request_id)


async def _count_and_abort(
    observer: Observer,
    method: str,
    err: Exception,
    context: Context,
    start: float,
    message_id: str = "",
) -> None:
    """Log the error once, count it, then end the call with its status code and request id."""
    request_id = request_id_of(context, getattr(err, "request_id", None) or message_id)
    code, details = _log(method, request_id, err, context)
    _finish(observer, method, code, start, request_id=request_id)
    await context.abort(code, details, trailing_metadata=((REQUEST_ID_KEY, request_id),))


def _finish(
    observer: Observer,
    method: str,
    code: grpc.StatusCode,
    start: float,
    context: Any = None,
    message_id: str = "",
    *,
    request_id: str | None = None,
) -> None:
    """Count and time the request; the access log (DEBUG) names its id (looked up if None)."""
    seconds = time.perf_counter() - start
    observer.observe_request(method, code, seconds)
    if logger.isEnabledFor(logging.DEBUG):  # the access log: off at the default INFO level
        request_id = request_id or request_id_of(context, message_id)
        extra = {"method": method, "request_id": request_id, "code": code.name}
        logger.debug("%s %s in %.3f ms", method, code.name, seconds * 1e3, extra=extra)


def _log(
    method: str, request_id: str, err: Exception, context: Context
) -> tuple[grpc.StatusCode, str]:
    """Log err once; the status code and the details to send."""
    if isinstance(err, PredictError):
        code = status_of(err)
    else:  # the client cancelled or its deadline passed: nobody listens to an INTERNAL
        code = grpc.StatusCode.CANCELLED if context.done() else grpc.StatusCode.INTERNAL
    extra = {"method": method, "request_id": request_id, "code": code.name}
    if code == grpc.StatusCode.CANCELLED:
        details = "request cancelled"
        logger.info("request abandoned by the client", extra=extra)
    elif isinstance(err, PredictError):
        details = str(err)
        logger.info("request failed: %s %s", code.name, details, extra=extra)
    else:
        details = f"internal error (request id {request_id}); details are in the server log"
        logger.exception("unexpected error", extra=extra)
    return code, details

"""Counting the calls that end before their handler runs.

grpc.aio reads a unary request before it calls the handler; when the client has already gone
(cancelled, channel closed, deadline passed while the server was busy) the read fails and the
handler is never called, so neither handle_errors nor anything else would count the call. This
interceptor serves our unary methods as stream-unary ones (identical on the wire: HTTP/2 frames
do not say which): the handler wrapper is called at once, reads the one request message itself
and counts a call whose message never came as CANCELLED (or DEADLINE_EXCEEDED), with a log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from service.rpc.calls import Context, Observer, count_gone

__all__ = ["GoneClientAccounting"]

if TYPE_CHECKING:  # generic in the type stubs only
    Handler = grpc.RpcMethodHandler[Any, Any]


class GoneClientAccounting(grpc.aio.ServerInterceptor):
    """Count unary calls of the services under `prefixes` ("/digits.v1.") that end unread."""

    def __init__(self, observer: Observer, prefixes: Sequence[str]) -> None:
        self.observer = observer
        self.prefixes = tuple(prefixes)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        path = handler_call_details.method
        if (
            handler is None
            or handler.unary_unary is None
            or handler.request_streaming
            or not path.startswith(self.prefixes)
        ):
            return handler
        cached = self._wrapped.get(path)  # built once per method, not per call
        if cached is None or cached[0] is not handler:
            wrapped = grpc.stream_unary_rpc_method_handler(
                self._read_one(path.rsplit("/", 1)[-1], handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
            cached = self._wrapped[path] = (handler, wrapped)
        return cached[1]

    def _read_one(
        self, method: str, behaviour: Callable[[Any, Any], Any]
    ) -> Callable[[AsyncIterator[Any], Context], Awaitable[Any]]:
        async def unary(requests: AsyncIterator[Any], context: Context) -> Any:
            try:
                request = await anext(aiter(requests), None)
            except asyncio.CancelledError:  # grpc.aio cancels the handler of a call that ended
                count_gone(self.observer, method, context)
                raise
            if request is not None:
                return await behaviour(request, context)
            if context.done():
                count_gone(self.observer, method, context)
                return None
            # A live client that half-closed without a message broke the unary contract.
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message was sent")

        return unary

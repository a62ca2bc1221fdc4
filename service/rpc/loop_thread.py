"""LoopThread: an asyncio event loop running in a dedicated daemon thread, driven from others."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

logger = logging.getLogger("service.rpc.server")

T = TypeVar("T")


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A uvloop loop when asked for and installed (else asyncio's own, with a warning)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            logger.warning("uvloop is not installed; using the asyncio event loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class LoopThread:
    """Owns one event loop in its own thread; `call(coro)` runs a coroutine there and waits."""

    def __init__(self, name: str = "grpc-aio", kind: str = "asyncio") -> None:
        self.loop = _new_loop(kind)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    @property
    def in_loop(self) -> bool:
        """True when called from the loop's own thread (where `call` would deadlock)."""
        return threading.current_thread() is self._thread

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and return its result (from any thread but the loop's)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Schedule `coro` on the loop without waiting (safe from any thread, the loop's too)."""
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and join its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_loop:
            self._thread.join(timeout)

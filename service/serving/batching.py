"""LoopBatcher: dynamic batching on an asyncio event loop (the grpc.aio server's), like Triton's.

A request appends (rows, future) to a pending list and, if no flush is scheduled, schedules one
with `loop.call_soon`. Handlers that are already runnable on the loop run before that flush, so
everything that arrived together is coalesced for free and a lone request on an idle server
never waits (no timers) unless `max_delay_us > 0` asks for one. A flush takes what is queued (up
to `max_batch_rows`), runs one forward pass per (model, dtype) group and sets each future with
its slice. A group of at most `inline_rows` rows runs inline on the loop (a forward pass of a
few rows costs tens of microseconds, less than a thread hand-off); a bigger one runs in a small
thread pool, so a 1024-row pass (~4 ms) does not stall the loop and BLAS releases the GIL.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.serving.errors import Cancelled, DeadlineExceeded, ModelNotReady

__all__ = ["LoopBatcher"]

Forward = Callable[[NDArray[Any]], NDArray[np.float32]]
Gone = Callable[[], bool]
Started = Callable[[], None]
# (forward, rows, future, enqueued at, deadline or inf, has the caller left?, pass starts)
_Item = tuple[
    Forward, NDArray[Any], "asyncio.Future[NDArray[Any]]", float, float, Gone | None,
    Started | None,
]  # fmt: skip


class LoopBatcher:
    """`await run(forward, x)` returns forward(x), computed together with concurrent callers' rows.

    All methods but `close` must be called on the event loop that runs the requests.
    """

    def __init__(
        self,
        *,
        max_batch_rows: int = 1024,
        max_delay_us: int = 0,
        enabled: bool = True,
        inline_rows: int = 64,
        threads: int = 2,
        observe_batch: Callable[[int, int], None] | None = None,
        observe_queue_delay: Callable[[float], None] | None = None,
    ) -> None:
        self.max_batch_rows = max_batch_rows
        self.max_delay_s = max_delay_us / 1e6
        self.enabled = enabled
        self.inline_rows = inline_rows
        self._threads = threads
        self._observe_batch = observe_batch or (lambda rows, requests: None)
        self._observe_delay = observe_queue_delay or (lambda seconds: None)
        self._pending: deque[_Item] = deque()
        self._scheduled = False
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Refuse new work (queued requests are still answered) and retire the thread pool."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    async def run(
        self,
        forward: Forward,
        x: NDArray[Any],
        timeout: float | None = None,
        gone: Gone | None = None,
        started: Started | None = None,
    ) -> NDArray[Any]:
        """Probabilities of x computed by `forward`, batched with other callers' rows if enabled.

        `timeout` (s) and `gone()` are checked before the forward pass (and again when a queued
        request's batch is formed): DeadlineExceeded / Cancelled instead of wasted work.
        `started()` is called when the request leaves the queue for its forward pass.
        """
        if self._closed:
            raise ModelNotReady("server is shutting down")
        _check_wanted(timeout, gone)
        if not self.enabled:
            self._observe_batch(len(x), 1)
            if started is not None:
                started()
            if len(x) <= self.inline_rows:
                return forward(x)
            return await asyncio.get_running_loop().run_in_executor(self._executor(), forward, x)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[NDArray[Any]] = loop.create_future()
        now = time.perf_counter()
        deadline = now + timeout if timeout is not None else float("inf")
        self._pending.append((forward, x, future, now, deadline, gone, started))
        if not self._scheduled:
            self._scheduled = True
            if self.max_delay_s > 0:
                loop.call_later(self.max_delay_s, self._flush)
            else:
                loop.call_soon(self._flush)
        if timeout is None:
            return await future
        try:
            return await asyncio.wait_for(future, timeout)  # cancels the future on timeout
        except TimeoutError:
            raise DeadlineExceeded("deadline passed while the request was queued") from None

    def _flush(self) -> None:
        """One batch: what is queued now, up to max_batch_rows; one pass per (model, dtype)."""
        self._scheduled = False
        now = time.perf_counter()
        groups: dict[tuple[Forward, str], list[_Item]] = {}
        rows = 0
        while self._pending:
            item = self._pending[0]
            if item[2].done() or _unwanted(item, now):  # never computed
                self._pending.popleft()
                continue
            if rows and rows + len(item[1]) > self.max_batch_rows:
                break
            self._pending.popleft()
            rows += len(item[1])
            self._observe_delay(now - item[3])
            if item[6] is not None:
                item[6]()
            groups.setdefault((item[0], item[1].dtype.str), []).append(item)
        if self._pending:  # the rest waited already: the next batch runs right after this one
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        for (forward, _), items in groups.items():
            x = items[0][1] if len(items) == 1 else np.concatenate([item[1] for item in items])
            if len(x) <= self.inline_rows:
                try:
                    result = forward(x)
                except Exception as err:
                    _fail(items, err)
                    continue
                _deliver(items, result)
                self._observe_batch(len(x), len(items))
            else:
                pending = asyncio.get_running_loop().run_in_executor(self._executor(), forward, x)
                pending.add_done_callback(functools.partial(self._finish, items=items))

    def _finish(self, done: asyncio.Future[NDArray[Any]], *, items: list[_Item]) -> None:
        if done.exception() is not None:
            _fail(items, done.exception())  # type: ignore[arg-type]
            return
        _deliver(items, done.result())
        self._observe_batch(sum(len(item[1]) for item in items), len(items))

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="forward")
        return self._pool


def _deliver(items: list[_Item], result: NDArray[Any]) -> None:
    """Hand every caller its own rows of the group's result."""
    if len(items) == 1:
        if not items[0][2].done():
            items[0][2].set_result(result)
        return
    start = 0
    for _, x, future, *_ in items:
        if not future.done():
            future.set_result(result[start : start + len(x)])
        start += len(x)


def _fail(items: list[_Item], err: BaseException) -> None:
    for item in items:
        if not item[2].done():
            item[2].set_exception(err)


def _check_wanted(timeout: float | None, gone: Gone | None) -> None:
    if timeout is not None and timeout <= 0:
        raise DeadlineExceeded("deadline passed before the request was computed")
    if gone is not None and gone():
        raise Cancelled("the client cancelled the request")


def _unwanted(item: _Item, now: float) -> bool:
    """Fail a queued request whose deadline passed or whose caller left; True if so."""
    try:
        _check_wanted(item[4] - now if item[4] != float("inf") else None, item[5])
    except (DeadlineExceeded, Cancelled) as err:
        item[2].set_exception(err)
        return True
    return False

"""Dynamic batcher: coalesces concurrent requests into one forward pass per model, like Triton's.

One batch runs at a time. The request that finds the batcher idle runs it in its own thread
(no hand-off to a worker, so a lone request on an idle server costs the same as no batching);
requests arriving meanwhile queue up. When a batch ends, the oldest queued request's thread is
woken to run the next one: it takes whatever is queued (up to `max_batch_rows`), runs one
forward pass per (model, dtype) and hands each caller its slice. With `max_delay_us=0` (the
default) nothing ever waits for company; a positive delay lets a batch wait that long to fill.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import DeadlineExceeded, ModelNotReady

__all__ = ["DynamicBatcher"]

Forward = Callable[[NDArray[Any]], NDArray[np.float32]]


class _Item:
    """One caller's rows; `ready` (made only for callers that wait) is set when the result is
    in or when the caller must run the next batch."""

    __slots__ = ("enqueued", "error", "forward", "lead", "ready", "result", "x")

    def __init__(self, forward: Forward, x: NDArray[Any]) -> None:
        self.forward = forward
        self.x = x
        self.enqueued = time.perf_counter()
        self.ready: threading.Event | None = None
        self.lead = False  # set (under the lock) when this caller must run the next batch
        self.result: NDArray[Any] | None = None
        self.error: BaseException | None = None


class DynamicBatcher:
    """`run(forward, x)` returns forward(x), computed together with concurrent callers' rows."""

    def __init__(
        self,
        *,
        max_batch_rows: int = 1024,
        max_delay_us: int = 0,
        enabled: bool = True,
        observe_batch: Callable[[int, int], None] | None = None,
        observe_queue_delay: Callable[[float], None] | None = None,
    ) -> None:
        self.max_batch_rows = max_batch_rows
        self.max_delay_s = max_delay_us / 1e6
        self.enabled = enabled
        self._observe_batch = observe_batch or (lambda rows, requests: None)
        self._observe_delay = observe_queue_delay or (lambda seconds: None)
        self._pending: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._busy = False  # a batch is being taken or run
        self._closed = False

    def start(self) -> None:
        """Nothing to start (no worker thread); kept so every component has start/close."""

    def close(self) -> None:
        """Refuse new work; queued requests are still answered."""
        with self._cond:
            self._closed = True

    def run(self, forward: Forward, x: NDArray[Any], timeout: float | None = None) -> NDArray[Any]:
        """Probabilities of x computed by `forward`, batched with other callers' rows if enabled."""
        if not self.enabled:
            self._observe_batch(len(x), 1)
            return forward(x)
        item = _Item(forward, x)
        with self._cond:
            if self._closed:
                raise ModelNotReady("server is shutting down")
            self._pending.append(item)
            if self._busy:
                item.ready = threading.Event()
                self._cond.notify()  # a batch waiting for company (max_delay) may take us
            else:
                self._busy = item.lead = True  # idle: this thread runs the batch, no hand-off
        deadline = None if timeout is None else time.perf_counter() + timeout
        while True:
            if item.lead:
                item.lead = False
                self._run_batch()
            if item.result is not None or item.error is not None:
                break
            # A leader's own item is always first in its batch, so only followers get here.
            assert item.ready is not None
            remaining = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
            if not item.ready.wait(remaining):
                if self._abandon(item):
                    raise DeadlineExceeded("deadline passed while the request was queued")
                deadline = None  # it is being computed or about to lead: wait for the answer
            item.ready.clear()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _abandon(self, item: _Item) -> bool:
        """Drop a timed-out item if it is still queued and not due to run the next batch."""
        with self._cond:
            if item.lead or item not in self._pending:
                return False  # already running or finished: its answer is moments away
            self._pending.remove(item)
            return True

    def _run_batch(self) -> None:
        batch = self._take()
        try:
            self._execute(batch)
        finally:
            with self._cond:
                if self._pending:
                    successor = self._pending[0]
                    successor.lead = True  # its thread runs the next batch
                    _wake(successor)
                else:
                    self._busy = False
        if len(batch) > 1 or self._pending:
            # Woken callers need the GIL to return their answers; give it up now instead of
            # making them wait for the interpreter's switch interval (up to 5 ms).
            time.sleep(0)

    def _take(self) -> list[_Item]:
        """What is queued, up to max_batch_rows (waiting up to max_delay for company)."""
        with self._cond:
            batch = [self._pending.popleft()]
            rows = len(batch[0].x)
            deadline = batch[0].enqueued + self.max_delay_s
            while rows < self.max_batch_rows:
                if self._pending and rows + len(self._pending[0].x) <= self.max_batch_rows:
                    item = self._pending.popleft()
                    batch.append(item)
                    rows += len(item.x)
                    continue
                remaining = deadline - time.perf_counter()
                if self._pending or remaining <= 0 or self._closed:
                    break  # the next request does not fit, or the wait is over
                self._cond.wait(remaining)
            return batch

    def _execute(self, batch: list[_Item]) -> None:
        now = time.perf_counter()
        if len(batch) == 1:  # the common case on a lightly loaded server: no grouping, no copies
            item = batch[0]
            self._observe_delay(now - item.enqueued)
            try:
                item.result = item.forward(item.x)
                self._observe_batch(len(item.x), 1)
            except Exception as err:
                item.error = err
            _wake(item)
            return
        groups: dict[tuple[Forward, str], list[_Item]] = {}
        for item in batch:
            self._observe_delay(now - item.enqueued)
            groups.setdefault((item.forward, item.x.dtype.str), []).append(item)
        for items in groups.values():
            try:
                if len(items) == 1:
                    results = [items[0].forward(items[0].x)]
                else:
                    probs = items[0].forward(np.concatenate([item.x for item in items]))
                    bounds = np.cumsum([len(item.x) for item in items])[:-1]
                    results = np.split(probs, bounds)
                self._observe_batch(sum(len(item.x) for item in items), len(items))
            except Exception as err:  # handed to every caller of the group
                for item in items:
                    item.error = err
                    _wake(item)
                continue
            for item, result in zip(items, results, strict=True):
                item.result = result
                _wake(item)


def _wake(item: _Item) -> None:
    if item.ready is not None:  # None: the caller is the running thread itself
        item.ready.set()

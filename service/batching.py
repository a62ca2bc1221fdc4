"""Dynamic batcher: coalesces concurrent requests into one forward pass per model, like Triton's.

One worker thread takes whatever is already queued (up to `max_batch_rows`), runs one forward
pass per (model, dtype) group and hands each caller its slice through a Future. With
`max_delay_us=0` (the default) it never waits for more work, so an idle server answers a lone
request at once; a positive delay lets a small batch wait that long for company.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import DeadlineExceeded, ModelNotReady

__all__ = ["DynamicBatcher"]

Forward = Callable[[NDArray[Any]], NDArray[np.float32]]


@dataclass
class _Item:
    forward: Forward
    x: NDArray[Any]
    future: Future[NDArray[np.float32]] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Queue + single worker thread; `run(forward, x)` blocks until x's probabilities are ready."""

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
        self._closed = False
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        if self.enabled and self._worker is None:
            self._worker = threading.Thread(target=self._loop, name="batcher", daemon=True)
            self._worker.start()

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop accepting work, finish what is queued, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)

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
            self._cond.notify()
        try:
            return item.future.result(timeout)
        except FutureTimeout:
            item.future.cancel()  # the worker skips it if it has not started yet
            raise DeadlineExceeded("deadline passed while the request was queued") from None
        except CancelledError:
            raise DeadlineExceeded("request cancelled while queued") from None

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._execute(batch)

    def _take(self) -> list[_Item] | None:
        """Block for work, then take what is queued (waiting up to max_delay for company)."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
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
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        groups: dict[tuple[Forward, str], list[_Item]] = {}
        for item in live:
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
            except Exception as err:  # handed to every caller of the group; the worker lives on
                for item in items:
                    item.future.set_exception(err)
                continue
            for item, result in zip(items, results, strict=True):
                item.future.set_result(result)

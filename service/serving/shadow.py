"""ShadowRunner: re-predict sampled requests with the shadow version, after they are answered.

The handler only queues (pixels, answered labels, shadow model) and returns; a worker task on the
same event loop takes the item once the loop is free again (after the response is on its way),
runs the shadow's forward pass on a dedicated thread (what queued up meanwhile in one pass) and
counts how many top-1 labels agree and how long the pass took. The queue is bounded: when the
shadow falls behind, new items are dropped (and counted) rather than queued, so a shadow can
never delay or change an answer, nor grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.observability.metrics import ServiceMetrics
from service.serving.priority import lower_thread_priority
from service.serving.served import ServedModel

__all__ = ["ShadowRunner"]

logger = logging.getLogger("service.serving.shadow")

_Item = tuple[ServedModel, NDArray[Any], NDArray[np.int64]]


class ShadowRunner:
    """A bounded queue of shadow predictions and the one worker that runs them."""

    def __init__(self, metrics: ServiceMetrics, *, max_queued: int = 256) -> None:
        self.metrics = metrics
        self.max_queued = max_queued
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, shadow: ServedModel, pixels: NDArray[Any], labels: NDArray[np.int64]) -> None:
        """Queue a shadow run (call on the event loop); dropped when the queue is full."""
        if self._queue is None:
            self._start()
        assert self._queue is not None
        try:
            self._queue.put_nowait((shadow, pixels, labels))
        except asyncio.QueueFull:
            self.metrics.observe_shadow_dropped(shadow.version)

    def _start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queued)
        # One thread, niced: a shadow never takes more than one core, nor one the answers need.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="shadow", initializer=lower_thread_priority
        )
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            items = [await queue.get()]
            while not queue.empty() and len(items) < self.max_queued:
                items.append(queue.get_nowait())  # what piled up meanwhile: one pass per group
            groups: dict[tuple[int, str], list[_Item]] = {}
            for item in items:
                groups.setdefault((item[0].version, item[1].dtype.str), []).append(item)
            for group in groups.values():
                await self._run(group)

    async def _run(self, group: list[_Item]) -> None:
        """One forward pass of the shadow over a group's rows; count agreement and time."""
        shadow = group[0][0]
        pixels = np.concatenate([item[1] for item in group]) if len(group) > 1 else group[0][1]
        labels = np.concatenate([item[2] for item in group]) if len(group) > 1 else group[0][2]
        start = time.perf_counter()
        try:
            proba = await asyncio.get_running_loop().run_in_executor(
                self._executor, shadow.predictor.predict_proba, pixels
            )
        except Exception:  # a shadow's failure is its own: it never reaches an answer
            logger.exception("shadow version %s failed", shadow.version)
            return
        seconds = time.perf_counter() - start
        agreed = int(np.count_nonzero(proba.argmax(axis=1) == labels))
        self.metrics.observe_shadow(shadow.version, len(labels), agreed, seconds)

    async def drain(self) -> None:
        """Wait until every queued shadow run has finished (tests, benchmarks)."""
        while self._queue is not None and not self._queue.empty():
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Stop the worker (from any thread) and release the shadow thread."""
        if self._worker is not None:
            worker = self._worker
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                worker.get_loop().call_soon_threadsafe(worker.cancel)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

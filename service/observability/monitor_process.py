"""MonitorProcess: drift profiling and the prediction log in a child process, off the server's GIL.

Why a process: in a thread, the log's encoding and compression and the drift folds shared the
interpreter lock with the event loop. At batch 1 x 32 that cost the loop its tail (a 1 s fold of
5,000 images showed as p99 1.7x) and the log 35 us of server CPU per request where its work
measured 11 us (docs/monitoring.md, bench/monitoring.py). Here the request path queues each
answer (a deque append, no lock); every ROWS answers it packs them as one ANSWERS record
(service.observability.monitor_answers) and writes what waits to a non-blocking pipe. A thread
sends what waits when nothing was sent for `flush_interval_s` (light traffic) and restarts a
lost child; it wakes only every `flush_interval_s`, because each wake-up takes the interpreter
lock from the event loop (in one same-run comparison, per-thread CPU from /proc under
bench/monitoring.py's load, the loop spent ~8 us more per request at 0.05 s than at 0.25 s;
0.5 and 1 s did no better than 0.25 s). The child
(`python -m service.observability.monitor_worker`) profiles, encodes, compresses, writes and
uploads. The child reads at most every `nap_s` (a SYNC rings it awake at once): each wake-up of a
process costs the server's cores too, and bigger batches profile faster. It runs at a lower
CPU priority (the monitor_priority setting; by default SCHED_IDLE): when the machine is
saturated it falls behind, and once its buffers are full records are dropped and counted;
requests are never delayed.

Metrics: each scrape sends a SYNC down the pipe and waits (at most `sync_timeout_s`) for the
child's answer, its metrics text, which is re-exported as is (the drift and log families keep
their names); the child's CPU time is `digits_monitor_cpu_seconds_total`. If the child dies,
records are dropped (counted) until it is restarted after `restart_after_s`, doubled (up to 60 s)
each time one dies within 10 s of its start (one that cannot start does not spin). A scrape the
child does not answer in `sync_timeout_s` (stopped, stuck) exports the last answer and
digits_monitor_up 0 until it answers again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from service.observability import monitor_answers as answers
from service.observability import monitor_wire as wire
from service.observability.monitor_child import read_replies, start_child
from service.observability.monitor_outbox import Outbox

__all__ = ["MonitorProcess"]

logger = logging.getLogger("service.observability.monitor_process")

_SEND_AT = 64 * 1024  # bytes packed before the request path writes them to the pipe itself
_UINT8, _FLOAT32 = np.dtype(np.uint8), np.dtype(np.float32)  # what ANSWERS rows carry
_BACKLOG_POLL_S = 0.05  # while a sync waits: how often to write more of a backlog


class MonitorProcess:
    """The server's end of the monitor process: queue records, read its metrics.

    `config` is the child's configuration (monitor_worker.main documents it); `drift` says
    whether answers are profiled, `log_sample_rate` (None: no log) which of them are logged.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        drift: bool,
        log_sample_rate: float | None,
        max_pending_bytes: int = 32 * 1024 * 1024,
        flush_interval_s: float = 0.25,
        nap_s: float = 0.1,
        sync_timeout_s: float = 5.0,
        restart_after_s: float = 1.0,
    ) -> None:
        self.config = config
        self.drift = drift
        self.log_sample_rate = log_sample_rate
        self.max_pending_bytes = max_pending_bytes
        self.flush_interval_s = flush_interval_s
        self.nap_s = nap_s
        self.sync_timeout_s = sync_timeout_s
        self.restart_after_s = restart_after_s
        self._lock = threading.Lock()  # the buffer, the pipe, the child
        self._outbox = Outbox()
        # Answers not packed yet: (unix time, model, request id, method, latency s, pixels,
        # probabilities), appended by the request path without the lock.
        self._queue: deque[tuple[float, Any, str, str, float, NDArray[Any], NDArray[Any]]] = deque()
        self._sent_at = 0.0  # time.monotonic() of the last send
        self._models: set[int] = set()  # versions whose MODEL record the child has
        self._dropped = {"drift": 0, "log": 0}
        self._child: subprocess.Popen[bytes] | None = None
        self._pipe: int | None = None
        self._doorbell: int | None = None  # write end: a byte before each SYNC wakes the child
        self._down_since: float | None = None
        self._restarts = 0
        self._started_at = 0.0
        self._delay_s = restart_after_s  # doubles while children die young (up to 60 s)
        self._replies: dict[int, bytes] = {}
        self._awaited: set[int] = set()  # tokens a sync() still waits for
        self._stalled = False  # the last SYNC went unanswered: exported as not up
        self._last_text = b""
        self._token = 0
        self._replied = threading.Condition()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The monitor process's id while it runs (None before start, after stop or a loss)."""
        child = self._child
        return None if child is None else child.pid

    # --- the request path (event loop) ------------------------------------------------------

    def sampled(self) -> bool:
        """Whether this request goes to the log (a random draw below rate 1)."""
        rate = self.log_sample_rate
        return rate is not None and (rate >= 1.0 or random.random() < rate)

    def prediction(
        self,
        model: Any,
        request_id: str,
        method: str,
        seconds: float,
        pixels: NDArray[Any],
        probabilities: NDArray[Any],
    ) -> None:
        """An answer (model: a ServedModel): profiled when drift is on, logged when sampled.

        The request path only appends it to a deque (thread-safe without a lock); every ROWS
        answers it packs them. In a busy server each line here costs several times what it does
        in a loop on its own (timed inside a server under bench/monitoring.py's load: 5.3-6.1
        us an answer with per-answer checks and packing, which a loop put at 1 us): checks,
        sampling and packing happen once per ROWS answers instead.
        """
        queue = self._queue
        queue.append((time.time(), model, request_id, method, seconds, pixels, probabilities))
        if len(queue) >= answers.ROWS:
            with self._lock:
                self._pack_queued()
                self._send_when_full()

    def failure(
        self,
        request_id: str,
        method: str,
        seconds: float,
        status: str,
        error: str,
        pixels: NDArray[Any] | None,
    ) -> None:
        """A failed request, for the log (the caller sampled it)."""
        parts = wire.pack_prediction(wire.LOG, time.time(), request_id, method, None, seconds,
                                     status, error, pixels, None)  # fmt: skip
        with self._lock:
            self._append(parts, wire.LOG)

    def feedback(
        self, request_id: str, index: int, label: int, version: int, predicted: int
    ) -> None:
        """Ground truth for an answer, for the log (always logged when the log is on)."""
        if self.log_sample_rate is None:
            return
        record = wire.pack_feedback(time.time(), request_id, index, label, version, predicted)
        with self._lock:
            self._append([record], wire.LOG)

    def _append(self, parts: list[Any], flags: int) -> None:
        """Queue one record, or count it dropped when the child is behind or down (lock held)."""
        outbox = self._room(flags)
        if outbox is not None:
            self._pack_queued()  # the rows queued before it go first
            for part in parts:
                outbox.add(part)
            self._send_when_full()

    def _room(self, flags: int) -> Outbox | None:
        """The outbox when a record with `flags` may wait in it; else None, the record counted
        dropped because the child is down or behind by max_pending_bytes (lock held)."""
        if self._has_room():
            return self._outbox
        self._count_dropped(flags)
        return None

    def _count_dropped(self, flags: int) -> None:
        if flags & wire.DRIFT:
            self._dropped["drift"] += 1
        if flags & wire.LOG:
            self._dropped["log"] += 1

    def _has_room(self) -> bool:
        """Whether the child is up and less than max_pending_bytes wait for it (lock held)."""
        return self._pipe is not None and self._outbox.waiting() < self.max_pending_bytes

    def _pack_queued(self) -> None:
        """The answers queued so far into the outbox (lock held): uint8 ones as ANSWERS records
        of consecutive rows, others as PREDICTION records, each version's MODEL record before
        its first answer; those the child cannot take now are counted dropped."""
        queue = self._queue
        if not queue:
            return
        drift = wire.DRIFT if self.drift else 0
        rate = self.log_sample_rate
        room = self._has_room()  # once a pack: up to ROWS more answers may overshoot
        popleft = queue.popleft
        items = [popleft() for _ in range(len(queue))]  # appends meanwhile wait for the next
        if room and (rate is None or rate >= 1.0):  # every answer has the same flags
            flags = drift | (wire.LOG if rate is not None else 0)
            if flags and self._pack_uniform(items, flags):
                return
        rows: list[answers.Row] = []
        images = 0  # in rows: a record holds at most MAX_IMAGES (unless one answer has more)
        models = self._models
        for timestamp, model, request_id, method, seconds, pixels, probabilities in items:
            flags = drift | (wire.LOG if self.sampled() else 0)
            if not flags:
                continue
            if not room:  # the child is down or behind
                self._count_dropped(flags)
                continue
            version = model.version
            if version not in models:
                models.add(version)
                self._add_rows(rows)  # its MODEL record goes before its answers
                images = 0
                self._outbox.add(wire.pack_model(version, model.manifest))
            if pixels.dtype is _UINT8 and probabilities.dtype is _FLOAT32:
                images += len(pixels)
                if images > answers.MAX_IMAGES and rows:
                    self._add_rows(rows)
                    images = len(pixels)
                rows.append((flags, timestamp, request_id, method, version, seconds, pixels,
                             probabilities))  # fmt: skip
                continue
            self._add_rows(rows)
            images = 0
            parts = wire.pack_prediction(flags, timestamp, request_id, method, version, seconds,
                                         "OK", None, pixels, probabilities)  # fmt: skip
            for part in parts:
                self._outbox.add(part)
        self._add_rows(rows)

    def _pack_uniform(self, items: list[Any], flags: int) -> bool:
        """The common case in one go, without a Python step per answer: one known version,
        uint8 images, float32 probabilities, at most MAX_IMAGES (lock held). False if not."""
        timestamps, models, ids, methods, seconds, pixels, probabilities = zip(*items, strict=True)
        model = models[0]
        if (
            model.version not in self._models
            or not all(m is model for m in models)
            or not all(p.dtype is _UINT8 for p in pixels)
            or not all(p.dtype is _FLOAT32 for p in probabilities)
            or sum(map(len, pixels)) > answers.MAX_IMAGES
        ):
            return False
        k = len(items)
        self._outbox.extend(*answers.pack_columns(
            [flags] * k, timestamps, ids, methods, [model.version] * k, seconds, pixels,
            probabilities,
        ))  # fmt: skip
        return True

    def _add_rows(self, rows: list[answers.Row]) -> None:
        """Pack `rows` as one ANSWERS record into the outbox and empty the list (lock held)."""
        if rows:
            self._outbox.extend(*answers.pack_answers(rows))
            rows.clear()

    def _send_when_full(self) -> None:
        if self._outbox.size >= _SEND_AT:
            self._send()

    def _send(self) -> None:
        """Write what the pipe takes now, never blocking (lock held)."""
        if self._pipe is None:
            return
        self._sent_at = time.monotonic()
        self._pack_queued()
        try:
            self._outbox.write_some(self._pipe)
        except OSError:  # EPIPE: the child is gone
            self._lost()

    # --- the child --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the child and the thread that sends what waits at light traffic."""
        with self._lock:
            self._spawn()
        self._stop.clear()
        self._flusher = threading.Thread(target=self._run, name="monitor-send", daemon=True)
        self._flusher.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Send what waits, close the child's input and wait for it to finish its files."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
            self._flusher = None
        deadline = time.monotonic() + timeout_s
        delivered = True
        with self._lock:
            self._pack_queued()  # while the pipe is still open: else counted dropped
            child, pipe = self._child, self._pipe
            self._child = self._pipe = None
            if pipe is not None:
                delivered = self._outbox.deliver(pipe, deadline)  # what waits, in time
                self._outbox = Outbox()
                os.close(pipe)
            if self._doorbell is not None:
                os.close(self._doorbell)
                self._doorbell = None
        if child is not None:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.0) if delivered else 0.0)
            except subprocess.TimeoutExpired:
                logger.error(
                    "the monitor process did not finish in %.0f s (stopped or stuck); killed, "
                    "its open log file is cut at its last flush", timeout_s,
                )  # fmt: skip
                child.kill()
                child.wait()

    def sync(self, log_action: int = wire.WRITE, timeout_s: float | None = None) -> bytes | None:
        """Everything queued so far folded and, by log_action (monitor_wire), written to the
        log (ROTATE: the file closed too); returns the child's metrics text, None when it did
        not answer within timeout_s (default sync_timeout_s)."""
        with self._lock:
            if self._pipe is None:
                return None
            self._token += 1
            token = self._token
            with self._replied:
                self._awaited.add(token)
            self._pack_queued()
            self._outbox.add(wire.pack_sync(token, self._dropped["drift"], self._dropped["log"],
                                            log_action))  # fmt: skip
            self._send()
            if self._doorbell is not None:
                with contextlib.suppress(OSError):  # full (rung already) or the child is gone
                    os.write(self._doorbell, b"!")
        deadline = time.monotonic() + (timeout_s or self.sync_timeout_s)
        while True:
            # _replied is never held while _lock is taken: the block above takes them in the
            # other order, and concurrent scrapes (one thread each) would deadlock.
            with self._replied:
                if self._replied.wait_for(lambda: token in self._replies,
                                          min(max(deadline - time.monotonic(), 0.0),
                                              _BACKLOG_POLL_S)):  # fmt: skip
                    self._awaited.discard(token)
                    return self._replies.pop(token)
                if time.monotonic() >= deadline:
                    self._awaited.discard(token)  # its late answer is not kept
                    if not self._stalled:
                        waited = timeout_s or self.sync_timeout_s
                        logger.warning("the monitor process did not answer in %.1f s; metrics "
                                       "are its last answer", waited)  # fmt: skip
                    self._stalled = True
                    return None
            with self._lock:
                self._send()  # the rest of a big backlog

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                with self._lock:
                    if self._child is not None and self._child.poll() is not None:
                        self._lost()
                    if self._pipe is None and self._due():
                        self._down_since = time.monotonic()  # a failed start retries later
                        self._spawn()
                    if time.monotonic() - self._sent_at >= self.flush_interval_s:
                        self._send()  # what waits when traffic is light
            except Exception:  # e.g. no process could be started: keep serving, retry later
                logger.exception("the monitor process's sender thread failed (it retries)")

    def _due(self) -> bool:
        return self._down_since is not None and (
            time.monotonic() - self._down_since >= self._delay_s
        )

    def _spawn(self) -> None:
        """Start the child (lock held); records wait in the pipe while it imports."""
        child = start_child({**self.config, "nap_s": self.nap_s})
        if self._doorbell is not None:
            os.close(self._doorbell)
        self._doorbell = child.doorbell
        if self._down_since is not None:
            self._restarts += 1
        self._child, self._pipe, self._down_since = child.process, child.pipe, None
        self._started_at = time.monotonic()
        self._models.clear()
        self._outbox = Outbox()  # records of a lost child would start mid-stream
        reader = threading.Thread(target=read_replies, args=(child.replies, self._on_reply),
                                  daemon=True, name="monitor-read")  # fmt: skip
        reader.start()

    def _lost(self) -> None:
        """The child is gone (lock held): drop what waits and restart it later."""
        child, self._child = self._child, None
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        self._outbox = Outbox()  # lost with the child (not counted: bytes, not records)
        self._down_since = time.monotonic()
        young = self._down_since - self._started_at < 10.0  # e.g. it cannot start: back off
        self._delay_s = min(self._delay_s * 2, 60.0) if young else self.restart_after_s
        code = None if child is None else child.poll()
        logger.error("the monitor process exited (code %s); restarting it in %.0f s, records are "
                     "dropped meanwhile", code, self._delay_s)  # fmt: skip

    def _on_reply(self, token: int, text: bytes) -> None:
        """The child's answer to SYNC `token` (its reader thread)."""
        with self._replied:
            if token in self._awaited:
                self._replies[token] = text
            self._last_text = text
            self._stalled = False
            self._replied.notify_all()

    # --- metrics ----------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The child's metrics (fresh when it answers within sync_timeout_s, else the last)."""
        text = self.sync(wire.NO_WRITE)  # fresh figures; the log keeps its own pace
        if text is None:
            with self._replied:
                text = self._last_text
        yield from text_string_to_metric_families(text.decode())
        up = self._pipe is not None and not self._stalled
        yield GaugeMetricFamily(
            "digits_monitor_up",
            "Whether the monitor process (drift, prediction log) runs and answered the last scrape",
            value=float(up),
        )  # fmt: skip
        yield CounterMetricFamily(
            "digits_monitor_restarts", "Times the monitor process was lost and restarted",
            value=float(self._restarts),
        )  # fmt: skip

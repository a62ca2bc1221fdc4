"""PredictionLog: sampled request/response records as rotated gzip JSON Lines.

It runs in the monitor process (service/observability/monitor_worker.py), never in the server:
records arrive as raw fields (`submit`, `submit_feedback`). A writer thread wakes every
`flush_interval_s`, drains the queue, encodes the records as JSON lines
(service.observability.log_records), appends them to the current gzip file and flushes it with
Z_SYNC_FLUSH, so everything written so far is readable while the file stays
open. The file is rotated when its compressed size reaches `max_bytes` or its age `max_age_s`.
When `queue_size` records are waiting, new ones are dropped and counted
(digits_prediction_log_records_total{outcome="dropped"}): a slow disk costs log records, never
request latency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray
from prometheus_client.core import CounterMetricFamily, Metric

from service.observability.log_records import (
    FILE_GLOB,
    encode_answers,
    encode_feedback,
    encode_prediction,
)
from service.observability.monitor_answers import Answers

if TYPE_CHECKING:  # boto3 costs the monitor process 0.28 s of CPU at start: only for s3://
    from service.observability.log_store import S3LogStore

__all__ = ["PredictionLog"]

logger = logging.getLogger("service.observability.prediction_log")

_PREDICTION, _FEEDBACK, _ANSWERS = 0, 1, 2
_CHUNK = 256  # records compressed per write


class PredictionLog:
    """A rotated, gzip-compressed JSON Lines log of sampled predictions (and all feedback)."""

    def __init__(
        self,
        directory: Path,
        *,
        queue_size: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 3600.0,
        flush_interval_s: float = 0.25,
        store: S3LogStore | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.queue_size = queue_size
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.flush_interval_s = flush_interval_s
        self._queue: deque[tuple[Any, ...]] = deque()
        # Records queued (an ANSWERS item holds several): each counter has one writer thread.
        self._submitted = 0  # the submitting thread's
        self._taken = 0  # the writer's
        self._dropped = 0  # written by the submitting thread only
        self.upstream_dropped = 0  # records the server could not send here (monitor_process)
        self._written = 0  # written by the writer thread only
        self._failed = 0
        self._failing = False  # the last drain failed (logged once per streak)
        self._file: _GzipStream | None = None
        self.store = store  # closed files go there (directory: the spool); None: they stay
        self._uploads = {"stored": 0, "failed": 0}
        self._opened_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writing = threading.RLock()  # the writer thread vs write_queued / close

    def submit(self, *fields: Any) -> None:
        """Queue a prediction record: the arguments of log_records.encode_prediction."""
        if self._submitted - self._taken >= self.queue_size:
            self._dropped += 1
            return
        self._submitted += 1
        self._queue.append((_PREDICTION, *fields))

    def submit_answers(self, answers: Answers, rows: NDArray[np.bool_]) -> None:
        """Queue the rows of an ANSWERS record where `rows` is True (monitor_answers); those
        beyond queue_size are dropped."""
        count = int(rows.sum())
        room = self.queue_size - (self._submitted - self._taken)
        if count > room:
            self._dropped += count - max(room, 0)
            if room <= 0:
                return
            rows = rows & (np.cumsum(rows) <= room)
            count = room
        self._submitted += count
        self._queue.append((_ANSWERS, answers, rows, count))

    def submit_feedback(self, *fields: Any) -> None:
        """Queue a feedback record: the arguments of log_records.encode_feedback."""
        if self._submitted - self._taken >= self.queue_size:
            self._dropped += 1
            return
        self._submitted += 1
        self._queue.append((_FEEDBACK, *fields))

    def start(self) -> None:
        """Create the directory (OSError if it cannot be), upload what a previous run left in the
        spool (with a store), and start the writer thread."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"prediction log directory {self.directory}: {err.strerror}") from None
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write what is queued, close the current file (with its gzip trailer), stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.write_queued(close=True)

    def write_queued(self, close: bool = False) -> None:
        """Write what is queued now (from any thread); close: then close the file (rotate)."""
        with self._writing:
            self._drain()
            if close:
                self._close_file()

    def _run(self) -> None:
        if self.store is not None:  # what a previous run could not upload
            self._upload_closed()
        while not self._stop.wait(self.flush_interval_s):
            with self._writing:
                self._drain()

    def _drain(self) -> None:
        """Write what is queued, about _CHUNK records at a time, then flush once."""
        queue = self._queue
        count = len(queue)  # items: a record, or an ANSWERS record's rows
        if count == 0:
            return
        lines: list[bytes] = []
        records = 0  # in lines
        stream = None
        try:
            stream = self._current()
            for i in range(count):
                kind, *fields = queue.popleft()
                if kind == _ANSWERS:
                    answers, rows, n = fields
                    lines.append(encode_answers(answers, rows))
                else:
                    encode = encode_prediction if kind == _PREDICTION else encode_feedback
                    lines.append(encode(*fields))
                    n = 1
                records += n
                self._taken += n
                if records >= _CHUNK or i == count - 1:
                    stream.write(b"".join(lines))
                    self._written += records
                    lines.clear()
                    records = 0
            stream.flush()  # Z_SYNC_FLUSH: readable up to here while the file is open
        except OSError as err:
            lost = records
            if stream is None:  # no file could be opened: what waits cannot be written now
                for _ in range(count):
                    item = queue.popleft()
                    n = item[3] if item[0] == _ANSWERS else 1
                    lost += n
                    self._taken += n
            self._failed += lost  # a disk error: digits_..._records_total{outcome="failed"}
            if not self._failing:  # one traceback per failing streak, not one per drain
                logger.exception("prediction log write failed; %d records lost", lost)
            else:
                logger.debug("prediction log write failed again (%s); %d records lost", err,
                             lost)  # fmt: skip
            self._failing = True
            self._close_file()
        else:
            if self._failing:
                logger.info("prediction log writes again")
            self._failing = False

    def _current(self) -> _GzipStream:
        """The open file, rotated first when it is too big or too old."""
        now = time.time()
        if self._file is not None and (
            self._file.tell() >= self.max_bytes or now - self._opened_at >= self.max_age_s
        ):
            self._close_file()
        if self._file is None:
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S%fZ")
            self._file = _GzipStream(self.directory / f"predictions-{stamp}.jsonl.gz")
            self._opened_at = now
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                logger.exception("closing the prediction log file failed")
        self._file = None
        if self.store is not None:
            self._upload_closed()

    def _upload_closed(self) -> None:
        """Upload every closed file of the spool, oldest first; delete each one stored."""
        assert self.store is not None
        for path in sorted(self.directory.glob(FILE_GLOB)):
            try:
                self.store.upload(path)
                path.unlink()
                self._uploads["stored"] += 1
            except Exception:  # the store is down or refuses: keep the file, retry later
                self._uploads["failed"] += 1
                logger.exception("uploading %s to %s failed; kept for a retry", path.name,
                                 self.store.location)  # fmt: skip
                return

    def collect(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "digits_prediction_log_records", "Prediction-log records, by outcome",
            labels=["outcome"],
        )  # fmt: skip
        records.add_metric(["written"], float(self._written))
        records.add_metric(["dropped"], float(self._dropped + self.upstream_dropped))
        records.add_metric(["failed"], float(self._failed))
        yield records
        if self.store is not None:
            uploads = CounterMetricFamily(
                "digits_prediction_log_uploads", "Closed log files sent to the s3:// destination",
                labels=["outcome"],
            )  # fmt: skip
            for outcome, count in self._uploads.items():
                uploads.add_metric([outcome], float(count))
            yield uploads


class _GzipStream:
    """A gzip file written by ISA-L (python-isal) at its level 1.

    Per record of 1,323 bytes (bench/monitoring.py's records, same run): random pixels, the
    benchmark's worst case, 1.9 us to 0.64 of the size, against zlib's Z_RLE level 1 (what
    this used before) 6.5 us to 0.77; MNIST-like digits 0.7 us to 0.14 against 6.3 us to 0.25.
    Readers see a standard gzip file (gzip, zcat).
    """

    def __init__(self, path: Path) -> None:
        self._raw: IO[bytes] = path.open("xb")
        self._zip = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)

    def write(self, data: bytes) -> None:
        self._raw.write(self._zip.compress(data))

    def flush(self) -> None:
        """Z_SYNC_FLUSH: everything written so far is readable while the file stays open."""
        self._raw.write(self._zip.flush(isal_zlib.Z_SYNC_FLUSH))
        self._raw.flush()

    def tell(self) -> int:
        """Compressed bytes written so far."""
        return self._raw.tell()

    def close(self) -> None:
        """Write the gzip trailer and close."""
        try:
            self._raw.write(self._zip.flush())
        finally:
            self._raw.close()

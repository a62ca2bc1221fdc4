"""The monitor process: `python -m service.observability.monitor_worker CONFIG_JSON`.

Started by service.observability.monitor_process.MonitorProcess, never by hand. It reads the
records of service.observability.monitor_wire on stdin, profiles answers in a DriftMonitor,
writes the prediction log with a PredictionLog (both with their own threads, here, where they
share the interpreter lock with nothing the server needs), answers each SYNC on stdout with its
metrics, and finishes its files when stdin closes. CONFIG_JSON:

    {"drift": {"window_images": int, "min_images": int, "fold_interval_s": float} | null,
     "log": {"directory": str, "store": "s3://..." | null, "queue_size": int, "max_bytes": int,
             "max_age_s": float, "flush_interval_s": float} | null,
     "logging": {"format": "json" | "text", "level": str},
     "priority": "idle" | "low" | "normal",  (set by the server as it starts this process)
     "doorbell": fd, "nap_s": float}

`doorbell` is the read end of a pipe the server writes a byte to before each SYNC; `nap_s` how
long to let records gather between reads (see _serve).

SIGINT and SIGTERM are ignored: a Ctrl-C reaches the whole process group, and so does a stop by
systemd (KillMode=control-group), `timeout` or `kill -- -PGID`; the server closes stdin once it
has drained, and this process then finishes its files and exits. Only the server ends it (or
SIGKILL, which leaves the open log file cut at its last flush).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from service.observability import monitor_wire as wire
from service.observability.drift import DriftMonitor
from service.observability.logs import configure_logging
from service.observability.prediction_log import PredictionLog

__all__ = ["main", "take"]

_READ = 1 << 20


class _Cpu:
    """This process's CPU time, so the server's CPU per request can include it."""

    def collect(self) -> Iterator[Metric]:
        times = os.times()
        yield CounterMetricFamily(
            "digits_monitor_cpu_seconds", "CPU time of the monitor process (user + system)",
            value=times.user + times.system,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    config: dict[str, Any] = json.loads((argv or sys.argv)[1])
    configure_logging(config["logging"]["format"], config["logging"]["level"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The answer channel is a private copy of stdout; fd 1 becomes stderr, so a stray print
    # cannot corrupt the replies.
    replies = os.dup(1)
    os.dup2(2, 1)
    drift = log = None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Cpu())
    if config.get("drift"):
        drift = DriftMonitor(**config["drift"])
        registry.register(drift)
    if config.get("log"):
        options = dict(config["log"])
        store_url = options.pop("store")
        store = None
        if store_url:  # imported here: boto3 costs 0.28 s of CPU, wasted without s3://
            from service.observability.log_store import S3LogStore

            store = S3LogStore(store_url)
        log = PredictionLog(Path(options.pop("directory")), store=store, **options)
        registry.register(log)
    try:
        if log is not None:
            log.start()
        if drift is not None:
            drift.start()
        _serve(drift, log, registry, replies, int(config["doorbell"]),
               float(config.get("nap_s", 0.0)))  # fmt: skip
    finally:
        if drift is not None:
            drift.stop()
        if log is not None:
            log.close()
    return 0


def _serve(
    drift: DriftMonitor | None,
    log: PredictionLog | None,
    registry: CollectorRegistry,
    replies: int,
    doorbell: int,
    nap_s: float,
) -> None:
    """Read records until stdin closes.

    After a read that did not fill the buffer, wait up to `nap_s` before the next one: records
    gather in the pipe meanwhile, so this process wakes a few times a second, not at every
    write of the server (each wake-up cost the server's cores too). A SYNC rings `doorbell`
    first, ending the wait at once. Answers are profiled in the order they came, before any
    SYNC after them is answered (the DriftMonitor folds what is queued when collected).
    """
    models: dict[int, wire.Model] = {}
    rest = b""
    while chunk := os.read(0, _READ):
        data = rest + chunk if rest else chunk
        while True:
            records, used = wire.decode(data)
            rest = data[used:]
            for record in records:
                if isinstance(record, wire.Sync):
                    _answer(record, drift, log, registry, replies)
                else:
                    take(record, drift, log, models)
            size = wire.record_size(rest)
            if size is None or size - len(rest) <= _READ:
                break  # the next read completes it
            # A big record (a request of thousands of images): read the rest of it at once,
            # not 1 MiB at a time onto a growing copy (quadratic).
            data = _read_to(rest, size)
            if len(data) < size:
                return  # stdin closed mid-record
        if len(chunk) < _READ and nap_s > 0 and select.select([doorbell], [], [], nap_s)[0]:
            os.read(doorbell, 4096)


def _read_to(start: bytes, size: int) -> bytes:
    """`start` and what follows it on stdin, up to `size` bytes in all (less at its end)."""
    parts, have = [start], len(start)
    while have < size and (more := os.read(0, size - have)):
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def take(
    record: wire.Record,
    drift: DriftMonitor | None,
    log: PredictionLog | None,
    models: dict[int, wire.Model],
) -> None:
    """Hand one record that is not a SYNC to the drift monitor and the log, as its flags say
    (models: the MODEL records so far, by version)."""
    if isinstance(record, wire.Answers):
        if drift is not None:
            _observe_answers(drift, record, models)
        if log is not None:
            logged = record.flags & wire.LOG != 0
            if logged.any():
                log.submit_answers(record, logged)
    elif isinstance(record, wire.Prediction):
        if record.flags & wire.DRIFT and drift is not None:
            assert record.pixels is not None and record.probabilities is not None
            drift.observe(_model(models, record.version or 0), record.pixels,
                          record.probabilities)  # fmt: skip
        if record.flags & wire.LOG and log is not None:
            log.submit(record.timestamp, record.request_id, record.method, record.version,
                       record.seconds, record.status, record.error, record.pixels,
                       record.probabilities)  # fmt: skip
    elif isinstance(record, wire.Feedback):
        if log is not None:
            log.submit_feedback(record.timestamp, record.request_id, record.index,
                                record.label, record.version, record.predicted)  # fmt: skip
    elif isinstance(record, wire.Model):
        models[record.version] = record


def _observe_answers(
    drift: DriftMonitor, record: wire.Answers, models: dict[int, wire.Model]
) -> None:
    """Queue the rows flagged DRIFT for the fold: one array pair per version (views of the
    stream when every row is profiled and of one version, the common case)."""
    profiled = record.flags & wire.DRIFT != 0
    versions = record.versions
    first = int(versions[0])
    if profiled.all() and (versions == first).all():
        drift.observe(_model(models, first), record.pixels, record.probabilities, len(record))
        return
    for version in np.unique(versions[profiled]).tolist():
        rows = profiled & (versions == version)
        images = record.image_mask(rows)
        drift.observe(_model(models, version), record.pixels[images],
                      record.probabilities[images], int(rows.sum()))  # fmt: skip


def _model(models: dict[int, wire.Model], version: int) -> wire.Model:
    return models.get(version) or wire.Model(version, {})


def _answer(
    sync: wire.Sync,
    drift: DriftMonitor | None,
    log: PredictionLog | None,
    registry: CollectorRegistry,
    replies: int,
) -> None:
    """Act on the log as asked, then send the metrics (the drift collector folds first)."""
    if drift is not None:
        drift.upstream_dropped = sync.drift_dropped
    if log is not None:
        log.upstream_dropped = sync.log_dropped
        if sync.log_action != wire.NO_WRITE:
            log.write_queued(close=sync.log_action == wire.ROTATE)
    text = generate_latest(registry)
    reply = memoryview(wire.REPLY.pack(sync.token, len(text)) + text)
    while reply:
        reply = reply[os.write(replies, reply) :]


if __name__ == "__main__":
    sys.exit(main())

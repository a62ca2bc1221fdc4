"""The monitor process: the byte stream to it, and what happens when it is killed or signalled.

Drift and the prediction log run in a child of the server (service/observability/
monitor_process.py); the drift and log tests exercise it through a server. Here: every record
kind survives the stream cut at any byte, and the server keeps answering (and recovers the
monitoring) when the child is killed, interrupted or terminated.
"""

from __future__ import annotations

import gzip
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import Registry
from service.observability import monitor_answers as answers
from service.observability import monitor_wire as wire
from service.observability.log_records import read_records
from service.observability.monitor_process import MonitorProcess
from tests.helpers.metrics_text import value
from tests.helpers.servers import Running, free_port, start
from tests.helpers.toy_models import publish, random_images


def _stream() -> tuple[bytes, list[object]]:
    """Every record kind, packed; and what decoding must give back."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 784), dtype=np.uint8)
    floats = rng.random((2, 28, 28))  # float64: sent as float32
    probabilities = rng.random((3, 10)).astype(np.float32)
    parts: list[object] = [wire.pack_model(7, {"profile": {"images": 3}, "other": "not sent"})]
    parts += wire.pack_prediction(wire.DRIFT | wire.LOG, 1e9, "id-é", "Predict", 7, 0.25, "OK",
                                  None, pixels, probabilities)  # fmt: skip
    parts += wire.pack_prediction(wire.LOG, 2e9, "", "ModelInfer", None, 0.5, "INVALID_ARGUMENT",
                                  "", floats, None)  # fmt: skip
    parts += wire.pack_prediction(wire.LOG, 3e9, "x" * 70_000, "Predict", None, 1.0, "NOT_FOUND",
                                  "no version 9 ✗", None, None)  # fmt: skip
    parts.append(wire.pack_feedback(4e9, "id-é", 2, 5, 7, 3))
    rows = _rows(rng)
    parts += answers.pack_answers(rows)[0]
    parts.append(wire.pack_sync(11, 2**40, 3, wire.ROTATE))
    data = b"".join(bytes(p) for p in parts)  # type: ignore[call-overload]
    # fmt: off
    expected = [
        wire.Model(7, {"profile": {"images": 3}}),
        wire.Prediction(wire.DRIFT | wire.LOG, 1e9, "id-é", "Predict", 7, 0.25, "OK", None,
                        pixels, probabilities),
        wire.Prediction(wire.LOG, 2e9, "", "ModelInfer", None, 0.5, "INVALID_ARGUMENT", "",
                        floats.reshape(2, 784).astype(np.float32), None),
        wire.Prediction(wire.LOG, 3e9, "x" * 65_535, "Predict", None, 1.0, "NOT_FOUND",
                        "no version 9 ✗", None, None),
        wire.Feedback(4e9, "id-é", 2, 5, 7, 3),
        rows,
        wire.Sync(11, 2**40, 3, wire.ROTATE),
    ]
    # fmt: on
    return data, expected


def _rows(rng: np.random.Generator) -> list[answers.Row]:
    """Answers as the server queues them: two methods, one to three images, odd ids (one cut
    at 65,535 bytes), interleaved versions, every flag combination."""
    rows: list[answers.Row] = []
    for i in range(9):
        n = 1 + i % 3
        request_id = ("ü" * 40_000) if i == 4 else f"id-{i}-é"
        rows.append((
            i % 4, 5e9 + i, request_id, "Predict" if i % 2 else "ModelInfer", 1 + i % 2,
            0.001 * i, rng.integers(0, 256, (n, 784), dtype=np.uint8),
            rng.random((n, 10)).astype(np.float32),
        ))  # fmt: skip
    return rows


def _same_rows(got: wire.Answers, rows: list[answers.Row]) -> None:
    """An ANSWERS record decoded is the rows packed (ids cut at 65,535 bytes)."""
    assert len(got) == len(rows)
    ids = got.request_ids()
    starts = got.starts().tolist()
    for i, row in enumerate(rows):
        flags, timestamp, request_id, method, version, seconds, pixels, probabilities = row
        assert int(got.flags[i]) == flags and float(got.timestamps[i]) == timestamp
        assert ids[i] == request_id.encode()[:65535].decode(errors="ignore")
        assert got.methods[got.method[i]] == method and int(got.versions[i]) == version
        assert float(got.seconds[i]) == seconds and int(got.images[i]) == len(pixels)
        first = starts[i]
        np.testing.assert_array_equal(got.pixels[first : first + len(pixels)], pixels)
        np.testing.assert_array_equal(got.probabilities[first : first + len(pixels)],
                                      probabilities)  # fmt: skip


def _same(got: object, want: object) -> None:
    if isinstance(want, list):
        assert isinstance(got, wire.Answers)
        _same_rows(got, want)
        return
    assert type(got) is type(want)
    for name in type(want).__slots__:  # type: ignore[attr-defined]
        a, b = getattr(got, name), getattr(want, name)
        if isinstance(b, np.ndarray):
            assert a is not None and a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, name


DATA, EXPECTED = _stream()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(DATA)), max_size=6))
def test_every_record_kind_survives_the_stream_cut_anywhere(cuts: list[int]) -> None:
    records, rest, at = [], b"", 0
    for end in [*sorted(cuts), len(DATA)]:  # what os.read hands the monitor, piece by piece
        data = rest + DATA[at:end]
        got, used = wire.decode(data)
        records += got
        rest, at = data[used:], end
    assert rest == b""
    assert len(records) == len(EXPECTED)
    for got, want in zip(records, EXPECTED, strict=True):
        _same(got, want)


def test_an_unknown_record_kind_is_a_framing_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="unknown record kind 99 at byte 0"):
        wire.decode(bytes([99]) + DATA)


# --- the child, under a real server ----------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Running:
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)
    server = start(registry, prediction_log=tmp_path / "log", metrics_port=free_port(),
                   log_flush_interval_s=0.05)  # fmt: skip
    yield server
    server.close()


def _process(running: Running) -> MonitorProcess:
    process = running.server.core.monitoring.process
    assert process is not None
    return process


def _wait_for(condition, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.integration
def test_a_killed_monitor_costs_records_not_requests_and_comes_back(running: Running) -> None:
    process = _process(running)
    for i in range(5):
        running.client.predict(random_images(1, seed=i), request_id=f"before-{i}")
    running.server.core.monitoring.sync()
    first = process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # Meanwhile every request is answered; their records wait (up to ROWS of them) for the next
    # monitor process, or are dropped and counted.
    answers = [running.client.predict(random_images(1, seed=i)) for i in range(30)]
    assert all(a.version == 1 for a in answers)
    _wait_for(lambda: process.pid not in (None, first))
    running.client.predict(random_images(1), request_id="after")
    metrics_url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    assert "digits_monitor_up 1.0" in text
    assert "digits_monitor_restarts_total 1.0" in text
    assert value(running, "digits_monitor_cpu_seconds_total") is not None
    running.server.core.monitoring.sync()
    ids = [r["request_id"] for r in read_records(running.server.core.monitoring.log_directory)]
    assert ids[:5] == [f"before-{i}" for i in range(5)] and ids[-1] == "after"
    dropped = value(running, "digits_prediction_log_records_total", outcome="dropped")
    assert len(ids) + dropped == 36  # each one logged or counted as dropped


@pytest.mark.integration
def test_signals_to_the_process_group_leave_the_monitor_to_the_server(
    running: Running, tmp_path: Path
) -> None:
    """Ctrl-C, and SIGTERM sent to the whole group (systemd, `timeout`), reach the monitor too:
    it ignores both and finishes its files when the server, once drained, closes its input."""
    process = _process(running)
    running.client.predict(random_images(2), request_id="one")
    running.server.core.monitoring.sync()
    child = process.pid
    assert child is not None
    os.kill(child, signal.SIGINT)
    os.kill(child, signal.SIGTERM)
    running.client.predict(random_images(1), request_id="two")
    running.server.core.monitoring.sync()
    assert process.pid == child
    running.close()
    for path in sorted((tmp_path / "log").glob("predictions-*.jsonl.gz")):
        gzip.decompress(path.read_bytes())  # complete gzip members: no truncated file
    assert [r["request_id"] for r in read_records(tmp_path / "log")] == ["one", "two"]
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # and it is gone


@pytest.mark.integration
def test_a_stuck_monitor_shows_as_down_and_cannot_hold_the_server_at_stop(
    running: Running,
) -> None:
    process = _process(running)
    running.server.core.monitoring.sync()
    pid = process.pid
    assert pid is not None
    process.sync_timeout_s = 0.5
    os.kill(pid, signal.SIGSTOP)
    try:
        assert value(running, "digits_monitor_up") == 0  # the scrape was not answered
        assert value(running, "digits_monitor_up") == 0
        for i in range(600):  # ~2 MB: more than the pipe takes
            running.client.predict(random_images(4, seed=i))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert value(running, "digits_monitor_up") == 1
    assert process._replies == {}  # the unanswered scrapes' late answers were not kept
    os.kill(pid, signal.SIGSTOP)
    stopping = threading.Thread(target=process.stop, kwargs={"timeout_s": 1.0})
    stopping.start()
    stopping.join(timeout=30)
    assert not stopping.is_alive()  # it gave up on the stuck child and killed it
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_interleaved_versions_and_float_images_are_profiled_per_version() -> None:
    """Canary traffic interleaves versions; V2 FP32 requests bring float pixels; some answers
    are logged only: each version's profile is what observing its profiled answers one by one
    gives."""
    from service.observability.drift import DriftMonitor
    from service.observability.monitor_worker import take

    rng = np.random.default_rng(2)
    stream: list[object] = []
    rows: list[answers.Row] = []
    profiled = []
    for i in range(40):
        version = 1 + (i % 3 == 0)
        flags = wire.LOG if i % 5 == 0 else wire.DRIFT | wire.LOG
        pixels = rng.integers(0, 256, (1 + i % 2, 784), dtype=np.uint8)
        probabilities = rng.random((len(pixels), 10)).astype(np.float32)
        if i % 7 == 0:
            pixels = (pixels / 255.0).astype(np.float32)
        if flags & wire.DRIFT:
            profiled.append((version, pixels, probabilities))
        if i % 7:
            rows.append((flags, 1e9, f"r{i}", "Predict", version, 0.1, pixels, probabilities))
            continue
        if rows:  # what MonitorProcess does before a record of another kind
            stream += answers.pack_answers(rows)[0]
            rows = []
        stream += wire.pack_prediction(flags, 1e9, f"r{i}", "Predict", version, 0.1, "OK", None,
                                       pixels, probabilities)  # fmt: skip
    stream += answers.pack_answers(rows)[0]
    records, _ = wire.decode(b"".join(bytes(p) for p in stream))  # type: ignore[call-overload]
    bulk, one_by_one = DriftMonitor(fold_interval_s=0), DriftMonitor(fold_interval_s=0)
    for record in records:
        take(record, bulk, None, {})
    for version, pixels, probabilities in profiled:
        one_by_one.observe(wire.Model(version, {}), pixels, probabilities)
    bulk.fold()
    one_by_one.fold()
    for version in (1, 2):
        got, want = bulk._versions[version].totals, one_by_one._versions[version].totals
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.integration
@pytest.mark.parametrize("priority", ["idle", "low"])
def test_the_monitor_runs_below_the_server(priority: str, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)
    server = start(registry, monitor_priority=priority)
    try:
        process = _process(server)
        server.client.predict(random_images(1))
        server.server.core.monitoring.sync()  # it answered: its priority is set by now
        pid = process.pid
        assert pid is not None
        if priority == "idle":
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        else:
            assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 10
    finally:
        server.close()


@pytest.mark.integration
def test_a_stalled_monitor_gets_the_backlog_whole_when_it_resumes(running: Running) -> None:
    """More than the pipe holds (1 MiB) waits in the server while the monitor is stopped;
    requests are answered meanwhile, and every record arrives intact and in order."""
    process = _process(running)
    running.server.core.monitoring.sync()
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        images = random_images(4, seed=3)  # ~3.3 KB a record: 600 records are ~2 MB
        answers = [running.client.predict(images, request_id=f"r{i}") for i in range(600)]
        assert all(a.version == 1 for a in answers)
    finally:
        os.kill(pid, signal.SIGCONT)
    running.server.core.monitoring.sync()
    log = running.server.core.monitoring.log_directory
    ids = [r["request_id"] for r in read_records(log) if r["kind"] == "prediction"]
    assert ids == [f"r{i}" for i in range(600)]
    assert value(running, "digits_prediction_log_records_total", outcome="dropped") == 0


def test_the_outbox_counts_bytes_not_rows() -> None:
    """A failed request's pixels arrive as an array's (n, 784) view: its size is n x 784 bytes,
    which bounds what waits for the pipe (max_pending_bytes) and when it is sent."""
    from service.observability.monitor_outbox import Outbox

    outbox = Outbox()
    parts = wire.pack_prediction(wire.LOG, 1e9, "r", "Predict", None, 0.1, "INVALID_ARGUMENT",
                                 "bad", np.zeros((3, 784), np.uint8), None)  # fmt: skip
    for part in parts:
        outbox.add(part)
    outbox.seal()
    assert outbox.waiting() == len(outbox.chunks[0]) == sum(len(bytes(p)) for p in parts)
    assert outbox.waiting() > 3 * 784


def test_answers_in_any_memory_layout_pack_and_decode_whole() -> None:
    """Fortran-order arrays (a transposed model output, say) pack like C-order ones."""
    from service.observability.monitor_outbox import Outbox

    rng = np.random.default_rng(4)
    pixels = np.asfortranarray(rng.integers(0, 256, (3, 784), dtype=np.uint8))
    probabilities = np.asfortranarray(rng.random((3, 10), dtype=np.float32))
    row = (wire.DRIFT, 1e9, "f", "Predict", 1, 0.1, pixels, probabilities)
    parts, size = answers.pack_answers([row, row])
    outbox = Outbox()
    for part in parts:
        outbox.add(part)
    outbox.seal()
    data = bytes(outbox.chunks[0])
    assert len(data) == size == wire.record_size(data[:17])
    (record,), used = wire.decode(data)
    assert used == size and isinstance(record, wire.Answers)
    np.testing.assert_array_equal(record.pixels, np.concatenate([pixels, pixels]))
    np.testing.assert_array_equal(record.probabilities, np.concatenate([probabilities] * 2))


DATA_PARTS = {
    "prediction": wire.pack_prediction(wire.LOG, 1e9, "id", "Predict", 2, 0.1, "OK", None,
                                       np.zeros((5, 784), np.uint8),
                                       np.zeros((5, 10), np.float32)),
    "answers": answers.pack_answers([(wire.LOG, 1e9, "id", "Predict", 2, 0.1,
                                      np.zeros((5, 784), np.uint8),
                                      np.zeros((5, 10), np.float32))])[0],
}  # fmt: skip


def test_the_size_of_a_big_record_is_known_from_its_head() -> None:
    """What lets the monitor read a record of thousands of images in one go (not 1 MiB at a
    time onto a growing copy)."""
    for parts in (DATA_PARTS["prediction"], DATA_PARTS["answers"]):
        data = b"".join(bytes(p) for p in parts)  # type: ignore[call-overload]
        assert wire.record_size(data[:1]) is None  # the head is not there yet
        assert wire.record_size(data[:60]) == len(data)
    assert wire.record_size(wire.pack_sync(1, 0, 0, wire.WRITE)) is None  # small kinds


@pytest.mark.integration
def test_a_request_of_thousands_of_images_is_profiled_and_logged(running: Running) -> None:
    images = random_images(3000, seed=5)  # ~2.5 MB: more than one read of the monitor's
    running.client.predict(images, request_id="big")
    running.client.predict(random_images(1), request_id="small")
    running.server.core.monitoring.sync()
    records = list(read_records(running.server.core.monitoring.log_directory))
    assert [(r["request_id"], r["shape"][0]) for r in records] == [("big", 3000), ("small", 1)]
    assert value(running, "digits_confidence_count", version="1") == 3001


def test_concurrent_scrapes_of_a_slow_monitor_do_not_deadlock(tmp_path: Path) -> None:
    """Each /metrics scrape syncs from its own thread; while the child is slow to answer, a
    sync sends more of the backlog: it must not hold one lock while it waits for the other."""
    config = {"drift": {"window_images": 5000, "min_images": 10, "fold_interval_s": 1.0},
              "log": None, "logging": {"format": "text", "level": "ERROR"},
              "priority": "normal"}  # fmt: skip
    process = MonitorProcess(config, drift=True, log_sample_rate=None, sync_timeout_s=0.3)
    process.start()
    assert process.sync(timeout_s=30) is not None
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # as SCHED_IDLE on a saturated machine, only longer
    stop = time.monotonic() + 5
    scrapes = [0, 0, 0, 0]

    def scrape(k: int) -> None:
        while time.monotonic() < stop:
            process.sync(wire.NO_WRITE)
            scrapes[k] += 1

    threads = [threading.Thread(target=scrape, args=(k,), daemon=True) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    free = process._lock.acquire(timeout=5)
    if free:
        process._lock.release()
        os.kill(pid, signal.SIGCONT)
        process.stop(timeout_s=5)
    else:  # deadlocked: stop() would wait for the lock forever
        os.kill(pid, signal.SIGKILL)
    assert free and not any(t.is_alive() for t in threads), "a scrape never returned: deadlock"
    assert min(scrapes) >= 5  # each timed out after 0.3 s, and again

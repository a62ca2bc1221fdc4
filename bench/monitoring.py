"""Monitoring overhead: batch 1 x 32 with the prediction log (rate 1.0) and drift on, vs off.

    .venv/bin/python bench/monitoring.py [--duration 4] [--rounds 5] [--client native|python]
                                         [--breakdown] [--out bench/results/monitoring.json]

Two `digits serve` processes on 127.0.0.1 serve the same model: "off" with drift, feedback and
the log disabled, "on" with `--prediction-log DIR --log-sample-rate 1.0` and drift and feedback
on (the defaults, monitor process at SCHED_IDLE). `--breakdown` adds "drift_only", "log_only"
and "on_priority_low" (the monitor process at nice 10). The load generator (bench/serve.py's,
in its own process) alternates between them for `--rounds` rounds of unary, batch 1, 32 in
flight, uint8 (in ABBA order); each figure is the median over the rounds, and the targets are
judged on `paired_ratios`, the median of the on/off ratios within each round, so the machine's
drift between minutes hits both alike. Target (issue 16): on/off throughput >= 0.9 and p99
<= 1.15x. The servers' work directory (logs) is removed at the end. CPU per
request is the server process's plus its monitor process's (also given alone); each server's
monitoring counters (records written and dropped, images profiled) are read at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "bench" / "mlserver")]

import launcher  # noqa: E402  (bench/mlserver/launcher.py)
import loadgen  # noqa: E402  (bench/mlserver/loadgen.py)
from serve import (  # noqa: E402  (bench/serve.py)
    _BLAS_VARS,
    RESULTS,
    _load_generator,
    _machine,
    _median_point,
    _Runner,
)

MODEL = "digits"
OFF = ("--no-drift", "--feedback-window", "0")
TARGETS = {"throughput_on_vs_off_min": 0.9, "p99_on_vs_off_max": 1.15}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    blas_env = {name: str(args.blas_threads) for name in _BLAS_VARS}
    os.environ.update(blas_env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="monitoring-", dir=RESULTS))
    registry = _registry(work)
    native, client_note = _load_generator(args.client)
    on_args = ("--prediction-log", str(work / "log"), "--log-sample-rate", "1.0", "--drift")
    variants = {"off": OFF, "on": on_args}
    if args.breakdown:  # each part alone: which one costs what
        variants["drift_only"] = ("--drift", "--feedback-window", "0")
        variants["log_only"] = (*OFF, "--prediction-log", str(work / "log-only"))
        # "on" with the monitor process at nice 10 instead of SCHED_IDLE (monitor_priority)
        variants["on_priority_low"] = (*on_args[:1], str(work / "log-low"), *on_args[2:],
                                       "--monitor-priority", "low")  # fmt: skip
    ports = {name: launcher.free_port() for name in variants}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    spawn = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(ProcessPoolExecutor(max_workers=1, mp_context=spawn))
        targets = {
            name: stack.enter_context(
                launcher.running_digits(
                    registry,
                    blas_env,
                    False,
                    work,
                    name,
                    extra_args=flags,
                    metrics_port=ports[name],
                )
            )
            for name, flags in variants.items()
        }
        client.submit(loadgen.warm_up).result()
        run = _Runner(client, args.duration, native)
        for round_ in range(args.rounds):
            order = list(targets.items())
            if round_ % 2:  # ABBA: neither server always goes first after the other's load
                order.reverse()
            for name, target in order:
                before = _cpu_and_requests(ports[name])
                point = run.point("digits", target, 1, "uint8", 32)
                after = _cpu_and_requests(ports[name])
                served = after[1] - before[1]
                point[_CPU] = round((after[0] - before[0]) / served * 1e6, 1) if served else None
                point[_MONITOR_CPU] = (
                    round((after[2] - before[2]) / served * 1e6, 1) if served else None
                )
                runs[name].append(point)
        counters = {name: _counters(ports[name]) for name in variants if name != "off"}
    off_point, on_point = _median_point(runs["off"]), _median_point(runs["on"])
    report: dict[str, Any] = {
        "benchmark": "monitoring",
        "point": "unary, batch 1, 32 in flight, uint8; medians of alternated rounds",
        "rounds": args.rounds,
        "seconds_per_point": args.duration,
        "machine": {**_machine(args.blas_threads), "load_generator": client_note},
        "off": {**off_point, "flags": list(OFF)},
        "on": {**on_point, "flags": [a if a != str(work / "log") else "DIR" for a in on_args]},
        **{name: _median_point(runs[name]) for name in variants if name not in ("on", "off")},
        "server_counters": counters,  # every server but "off": records written and dropped
        "in_process_costs_us": _costs(),
        "runs": {
            name: [
                {k: p.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms", _CPU, _MONITOR_CPU)}
                for p in points
            ]
            for name, points in runs.items()
        },
    }
    paired = {  # per round, on and off measured within seconds of each other
        "throughput_on_vs_off": _paired(runs, "requests_per_s"),
        "p99_on_vs_off": _paired(runs, "p99_ms"),
    }
    report["ratios"] = {
        "throughput_on_vs_off": _ratio(
            on_point.get("requests_per_s"), off_point.get("requests_per_s")
        ),
        "p99_on_vs_off": _ratio(on_point.get("p99_ms"), off_point.get("p99_ms")),
        "server_cpu_per_request_on_vs_off": _ratio(_median(runs["on"]), _median(runs["off"])),
    }
    report["server_cpu_us_per_request"] = {name: _median(points) for name, points in runs.items()}
    report["monitor_cpu_us_per_request"] = {
        name: _median(points, _MONITOR_CPU) for name, points in runs.items()
    }
    report["paired_ratios"] = paired
    report["targets"] = {
        **TARGETS,
        "judged_on": "paired_ratios: the median over rounds of on/off within the round",
        "throughput_met": _ok(paired["throughput_on_vs_off"], lambda r: r >= 0.9),
        "p99_met": _ok(paired["p99_on_vs_off"], lambda r: r <= 1.15),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)  # the servers' logs: ~0.1 GB per run
    return 0


def _registry(work: Path) -> Path:
    """A fresh seeded model published with a drift profile (of random images), as production."""
    from core import MLP
    from core.profile import profile
    from registry import Registry

    model = MLP((784, 128, 40, 10), seed=0)
    images = np.random.default_rng(0).random((2000, 784), dtype=np.float32)
    manifest = {
        "layer_sizes": [784, 128, 40, 10], "loss": "cross_entropy", "metrics": {"accuracy": 0.1},
        "profile": profile(images, model.predict_proba(images)),
    }  # fmt: skip
    params = {k: np.ascontiguousarray(v) for k, v in model.params.items()}
    registry = Registry(work / "registry")
    version = registry.publish(MODEL, params, manifest).version
    registry.set_alias(MODEL, "production", version)
    return registry.root


def _costs(n: int = 20_000) -> dict[str, float]:
    """Microseconds per call of each monitoring step, measured in this process (median of 5).

    Server process (event loop): MonitorProcess.prediction for one batch-1 answer, with a
    real monitor process reading the pipe (queued, packed ROWS at a time, sent; the
    reference: packing one monitor_wire PREDICTION record per request, what this replaced),
    remembering it for feedback at capacity, and, as the same-run reference for that, a plain
    dict evicting its oldest key. Monitor process: decoding one answer (in an ANSWERS record;
    the reference: its own record), encoding it as a JSON line (in bulk; the reference: one by
    one), compressing it (ISA-L level 1 as written; zlib Z_RLE level 1, used before, as the
    reference), profiling one image for drift.
    """
    import time
    import zlib
    from datetime import UTC, datetime

    from isal import isal_zlib

    from core import MLP
    from service.observability import monitor_answers as answers
    from service.observability import monitor_wire as wire
    from service.observability.drift import DriftMonitor
    from service.observability.feedback import LiveAccuracy
    from service.observability.log_records import encode_answers, encode_prediction
    from service.serving.model import Predictor
    from service.serving.served import ServedModel

    params = MLP((784, 128, 40, 10), seed=0).params
    served = ServedModel("digits", 1, Predictor(params), {"metrics": {}}, datetime.now(UTC))
    pixels = np.random.default_rng(0).integers(0, 256, (1, 784), dtype=np.uint8)
    probabilities = served.predictor.predict_proba(pixels)
    labels = probabilities.argmax(axis=1)
    capacity = 100_000
    ids = [f"id-{i}" for i in range(capacity + 5 * n)]

    def pack_one_by_one(calls: int) -> None:  # the record per request this replaced
        parts: list[Any] = []
        size = 0
        for i in range(calls):
            for part in wire.pack_prediction(wire.DRIFT | wire.LOG, time.time(), ids[i],
                                             "Predict", 1, 0.001, "OK", None, pixels,
                                             probabilities):  # fmt: skip
                parts.append(part)
                size += part.nbytes if isinstance(part, memoryview) else len(part)  # bytes
            if size >= 65536:
                b"".join(parts)
                parts, size = [], 0

    feedback = LiveAccuracy(capacity)
    plain: dict[str, Any] = {}
    for i in range(capacity):  # both full: every call below also evicts the oldest
        feedback.remember(ids[i], served, labels)
        plain[ids[i]] = (1, labels)
    cursor = [capacity]

    def remember(calls: int) -> None:
        start = cursor[0]
        for i in range(start, start + calls):
            feedback.remember(ids[i], served, labels)
        cursor[0] = start + calls

    plain_cursor = [capacity]

    def remember_plain_dict(calls: int) -> None:
        start = plain_cursor[0]
        for i in range(start, start + calls):
            plain[ids[i]] = (1, labels)
            if len(plain) > capacity:
                del plain[next(iter(plain))]
        plain_cursor[0] = start + calls

    rng = np.random.default_rng(1)
    rows = [  # 5,000 requests a second
        (wire.DRIFT | wire.LOG, 1e9 + i / 5000, ids[i], "Predict", 1, 0.001,
         rng.integers(0, 256, (1, 784), dtype=np.uint8), probabilities)
        for i in range(n)
    ]  # fmt: skip
    data = b"".join(
        bytes(part)
        for start in range(0, n, answers.ROWS)
        for part in answers.pack_answers(rows[start : start + answers.ROWS])[0]
    )
    one_by_one = b"".join(
        bytes(part) for row in rows for part in wire.pack_prediction(*row[:6], "OK", None, *row[6:])
    )
    decoded = [r for r in wire.decode(data)[0] if isinstance(r, wire.Answers)]
    everything = np.ones(answers.ROWS, bool)

    def decode(calls: int) -> None:
        wire.decode(data[: len(data) * calls // n])

    def decode_one_by_one(calls: int) -> None:
        wire.decode(one_by_one[: len(one_by_one) * calls // n])

    def encode(calls: int) -> None:
        for record in decoded[: calls // answers.ROWS]:
            encode_answers(record, everything[: len(record)])

    def encode_one_by_one(calls: int) -> None:
        for i in range(calls):
            encode_prediction(1e9 + i, "id", "Predict", 1, 0.001, "OK", None, pixels, probabilities)

    records = b"".join(
        encode_prediction(1e9 + i, f"id-{i}", "Predict", 1, 0.001, "OK", None,
                          rng.integers(0, 256, (1, 784), dtype=np.uint8), probabilities)
        for i in range(2000)
    )  # fmt: skip

    def compress(calls: int) -> None:  # what prediction_log._GzipStream writes with
        for _ in range(calls // 2000):
            gzip = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
            gzip.compress(records)
            gzip.flush()

    def compress_zlib_rle(calls: int) -> None:
        for _ in range(calls // 2000):
            gzip = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 8, zlib.Z_RLE)
            gzip.compress(records)
            gzip.flush()

    def fold(calls: int) -> None:
        drift = DriftMonitor(pending_limit=calls + 1)
        for _ in range(calls):
            drift.observe(served, pixels, probabilities)
        drift.fold()

    return {
        "server_prediction_per_request": _prediction_us(served, pixels, probabilities, ids[:n]),
        "reference_server_pack_one_record_per_request": _median_us(pack_one_by_one, n),
        "server_feedback_remember_at_capacity": _median_us(remember, n),
        "reference_plain_dict_remember_at_capacity": _median_us(remember_plain_dict, n),
        "monitor_decode_per_record": _median_us(decode, n),
        "reference_monitor_decode_one_record_per_request": _median_us(decode_one_by_one, n),
        "monitor_encode_per_record": _median_us(encode, n),
        "reference_monitor_encode_one_by_one": _median_us(encode_one_by_one, n),
        "monitor_gzip_isal_per_record_random_pixels": _median_us(compress, n),
        "reference_gzip_zlib_rle_per_record_random_pixels": _median_us(compress_zlib_rle, n),
        "monitor_fold_per_image": _median_us(fold, 5000),
    }


def _prediction_us(served: Any, pixels: Any, probabilities: Any, ids: list[str]) -> float:
    """Median (of 5 runs of len(ids) calls) microseconds of MonitorProcess.prediction, the
    server's whole per-answer cost for drift and the log, with its monitor process running
    (at normal priority, synced between runs so that it never drops)."""
    from service.observability.metrics import ServiceMetrics
    from service.serving.monitoring import Monitoring
    from service.settings import ServiceSettings

    with tempfile.TemporaryDirectory() as log:
        settings = ServiceSettings(prediction_log=log, log_sample_rate=1.0, drift=True,
                                   feedback_window=0, monitor_priority="normal")  # fmt: skip
        monitoring = Monitoring.from_settings(settings, ServiceMetrics())
        process = monitoring.process
        assert process is not None
        monitoring.start()

        def predictions(calls: int) -> None:
            for request_id in ids[:calls]:
                process.prediction(served, request_id, "Predict", 0.001, pixels, probabilities)

        try:
            return _median_us(predictions, len(ids), between=monitoring.sync)
        finally:
            monitoring.stop()


def _median_us(step: Any, calls: int, between: Any = None) -> float:
    """Median of 5 runs of `step(calls)`, in microseconds per call; `between()` (untimed) runs
    after each."""
    import time

    runs = []
    for _ in range(5):
        start = time.perf_counter()
        step(calls)
        runs.append((time.perf_counter() - start) / calls * 1e6)
        if between is not None:
            between()
    return round(sorted(runs)[2], 3)


_CPU = "server_cpu_us_per_request"  # the server process and its monitor process
_MONITOR_CPU = "monitor_cpu_us_per_request"  # of which the monitor process


def _median(points: list[dict[str, Any]], key: str = _CPU) -> float | None:
    """Median server CPU microseconds per request over the rounds: unlike throughput, it barely
    moves when other processes compete for the cores."""
    values = sorted(p[key] for p in points if p.get(key) is not None)
    return values[len(values) // 2] if values else None


def _cpu_and_requests(port: int) -> tuple[float, float, float]:
    """(CPU seconds, requests answered, monitor CPU seconds) of the server behind /metrics on
    `port`: the CPU is the server process's plus its monitor process's
    (digits_monitor_cpu_seconds_total), which is also given alone."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    cpu = requests = monitor = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "digits_monitor_cpu_seconds_total":
                monitor = sample.value
            if sample.name in ("process_cpu_seconds_total", "digits_monitor_cpu_seconds_total"):
                cpu += sample.value
            elif sample.name == "digits_requests_total" and sample.labels["method"] == "Predict":
                requests += sample.value
    return cpu, requests, monitor


def _counters(port: int) -> dict[str, float]:
    """The monitoring counters of a server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = {"digits_prediction_log_records_total", "digits_drift_dropped_total",
              "digits_confidence_count", "digits_drift_window_images",
              "digits_monitor_cpu_seconds_total", "digits_monitor_up"}  # fmt: skip
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sample.labels.items())
                out[key] = sample.value
    return out


def _paired(runs: dict[str, list[dict[str, Any]]], key: str) -> float | None:
    """Median over the rounds of on[key] / off[key] measured in the same round.

    The machine's speed drifts between rounds (the "off" server alone ranged 3,834 to 5,807
    requests/s within one run of this benchmark): a ratio taken within a round cancels most of
    that, the ratio of the two medians does not.
    """
    ratios = [
        on[key] / off[key]
        for off, on in zip(runs["off"], runs["on"], strict=True)
        if on.get(key) and off.get(key)
    ]
    return round(statistics.median(ratios), 3) if ratios else None


def _ratio(ours: float | None, reference: float | None) -> float | None:
    return round(ours / reference, 3) if ours and reference else None


def _ok(ratio: float | None, test: Any) -> bool | None:
    return None if ratio is None else bool(test(ratio))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per point (4)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (5)")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per server (1)")
    parser.add_argument("--client", choices=("native", "python"), default="native",
                        help="load generator (the C++ one unless it cannot be built)")  # fmt: skip
    parser.add_argument("--breakdown", action="store_true",
                        help="also servers with only drift and only the log on")  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS / "monitoring.json"), help="JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())

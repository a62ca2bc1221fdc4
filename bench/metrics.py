"""Per-request metrics cost: prometheus_client's Counter + Histogram against our hot series.

service/observability/hot_metrics.py exists only to make the two observations every request
pays (a request count by method and code, a latency histogram by method) cheaper than the
library's objects. This measures both in the same run, alternated, so the gain is re-checked on
whatever machine runs it. JSON out:

    python bench/metrics.py [--calls 200000] [--rounds 5] [--out bench/results/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.observability.metrics import _LATENCY_BUCKETS, ServiceMetrics


def _library_observer() -> Callable[[str, grpc.StatusCode, float], None]:
    """What observe_request did with prometheus_client's own objects (children cached)."""
    registry = CollectorRegistry()
    requests = Counter("digits_requests", "RPCs", ["method", "code"], registry=registry)
    latency = Histogram(
        "digits_request_latency_seconds", "time", ["method"], buckets=_LATENCY_BUCKETS,
        registry=registry,
    )  # fmt: skip
    children: dict[tuple[str, int], tuple[object, object]] = {}

    def observe(method: str, code: grpc.StatusCode, seconds: float) -> None:
        key = (method, id(code))
        pair = children.get(key)
        if pair is None:
            pair = requests.labels(method, code.name), latency.labels(method)
            children[key] = pair
        pair[0].inc()  # type: ignore[attr-defined]
        pair[1].observe(seconds)  # type: ignore[attr-defined]

    return observe


def _per_call_us(observe: Callable[[str, grpc.StatusCode, float], None], calls: int) -> float:
    ok = grpc.StatusCode.OK
    start = time.perf_counter()
    for i in range(calls):
        observe("Predict", ok, 0.0004 + (i & 7) * 1e-4)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="observations per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()

    library, hot = _library_observer(), ServiceMetrics().observe_request
    rounds: dict[str, list[float]] = {"prometheus_client": [], "hot_metrics": []}
    for _ in range(args.rounds):  # alternated: the machine's speed drifts between minutes
        rounds["prometheus_client"].append(_per_call_us(library, args.calls))
        rounds["hot_metrics"].append(_per_call_us(hot, args.calls))
    medians = {name: statistics.median(values) for name, values in rounds.items()}
    result = {
        "python": platform.python_version(),
        "calls_per_round": args.calls,
        "us_per_request": medians,
        "rounds_us": rounds,
        "speedup": medians["prometheus_client"] / medians["hot_metrics"],
        "saved_us_per_request": medians["prometheus_client"] - medians["hot_metrics"],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

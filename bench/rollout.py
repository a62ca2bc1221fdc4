"""Rollout benchmark: p99 latency around a promotion and with a 100 % shadow, JSON out.

    .venv/bin/python bench/rollout.py [--quick] [--out bench/results/rollout.json]

One `digits serve` process on 127.0.0.1 (BLAS threads pinned, polling the registry every 0.5 s)
and one grpc.aio load-generator process (32 unary requests in flight at batch 1) that records
every request's send time, latency, status and answering version. References come from the same
run: the swap windows (the 2 s after each promotion is written, which holds the poll, the load,
the warm-up and the swap) against the steady requests between them; shadow-on rounds against
shadow-off rounds, alternated, compared by their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "mlserver")]

import launcher  # noqa: E402  (bench/mlserver/launcher.py)

RESULTS = ROOT / "bench" / "results"
MODEL = "digits"
CONCURRENCY = 32
POLL_S = 0.5
SWAP_WINDOW_S = 2.0
TARGETS = {"failed_requests": 0, "swap_p99_vs_steady_max": 1.2, "shadow_p99_vs_none_max": 1.1}
_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def load(target: str, seconds: float, concurrency: int = CONCURRENCY) -> dict[str, list[Any]]:
    """Closed-loop batch-1 Predict calls for ``seconds``; every request's (sent, latency, ok,
    version). Times are time.monotonic(), one clock for every process of the machine."""
    return asyncio.run(_load(target, seconds, concurrency))


async def _load(target: str, seconds: float, concurrency: int) -> dict[str, list[Any]]:
    import grpc

    from service.client.client import encode_images
    from service.generated.digits.v1 import digits_pb2 as pb
    from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc

    images = np.random.default_rng(0).integers(0, 256, size=(concurrency, 1, 784), dtype=np.uint8)
    requests = [pb.PredictRequest(images=encode_images(image)) for image in images]
    out: dict[str, list[Any]] = {"sent": [], "latency": [], "ok": [], "version": []}
    async with grpc.aio.insecure_channel(target) as channel:
        predict = pb_grpc.DigitClassifierStub(channel).Predict
        await predict(requests[0])  # connect outside the timings
        end = time.monotonic() + seconds

        async def worker(request: pb.PredictRequest) -> None:  # one image per worker
            while (sent := time.monotonic()) < end:
                try:
                    version = (await predict(request, timeout=10)).version
                    ok = True
                except grpc.aio.AioRpcError:
                    version, ok = 0, False
                out["sent"].append(sent)
                out["latency"].append(time.monotonic() - sent)
                out["ok"].append(ok)
                out["version"].append(version)

        await asyncio.gather(*(worker(request) for request in requests))
    return out


def _p99_ms(latencies: np.ndarray) -> float | None:
    return round(float(np.percentile(latencies, 99)) * 1e3, 3) if len(latencies) else None


def _server_buckets(metrics: str) -> dict[float, float]:
    """The server's own Predict handling-time histogram (cumulative buckets, seconds)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "digits_request_latency_seconds_bucket"
        and sample.labels.get("method") == "Predict"
    }


def _server_p99_ms(windows: list[tuple[dict[float, float], dict[float, float]]]) -> float:
    """p99 (ms, interpolated in the buckets) of the requests the server handled in ``windows``."""
    from pipeline.canary_metrics import quantile

    pooled: dict[float, float] = {}
    for before, after in windows:
        for le, count in after.items():
            pooled[le] = pooled.get(le, 0.0) + count - before.get(le, 0.0)
    return round(quantile(0.99, pooled) * 1e3, 3)


def _swap(
    client: ProcessPoolExecutor, target: str, metrics: str, registry: Any, quick: bool
) -> dict[str, Any]:
    """Promote back and forth under load. Each swap window (the 2 s after a promotion is written)
    is paired with the 2 s of steady traffic just before it (ending 0.5 s before the promotion),
    so a burst from elsewhere on the machine hits both sides of a pair alike. The server's own
    handling-time histogram is read at each window's edges too: it excludes client-side stalls."""
    gap = 4.5  # the steady 2 s before a promotion ends 0.5 s before it, after the last window
    promotions = 2 if quick else 8
    run: Future[dict[str, list[Any]]] = client.submit(load, target, 1.0 + gap * promotions + 2)
    start = time.monotonic() + 1.0 + gap  # the child's first second is its own warm-up
    moments = [start + i * gap for i in range(promotions)]
    server: dict[str, list[tuple[dict[float, float], dict[float, float]]]] = {
        "steady": [], "swap": [],
    }  # fmt: skip
    for i, moment in enumerate(moments):
        _sleep_until(moment - 0.5 - SWAP_WINDOW_S)
        steady_start = _server_buckets(metrics)
        _sleep_until(moment - 0.5)
        server["steady"].append((steady_start, _server_buckets(metrics)))
        _sleep_until(moment)
        swap_start = _server_buckets(metrics)
        registry.set_alias(MODEL, "production", 2 if i % 2 == 0 else 1, reason="bench/rollout.py")
        _sleep_until(moment + SWAP_WINDOW_S)
        server["swap"].append((swap_start, _server_buckets(metrics)))
    data = {k: np.asarray(v) for k, v in run.result().items()}
    sent, latency = data["sent"], data["latency"]
    pairs, first_answers = [], []
    swap_all = np.zeros(len(sent), bool)
    steady_all = np.zeros(len(sent), bool)
    for i, moment in enumerate(moments):
        swap = (sent >= moment) & (sent < moment + SWAP_WINDOW_S)
        steady = (sent >= moment - 0.5 - SWAP_WINDOW_S) & (sent < moment - 0.5)
        swap_all |= swap
        steady_all |= steady
        pairs.append((_p99_ms(latency[swap]), _p99_ms(latency[steady])))
        new = sent[(data["version"] == (2 if i % 2 == 0 else 1)) & (sent >= moment)]
        first_answers.append(round(float(new.min() - moment), 3) if len(new) else None)
    ratios = [round(a / b, 3) for a, b in pairs if a and b]
    return {
        "promotions": promotions,
        "requests": len(sent),
        "failed_requests": int((~data["ok"]).sum()),
        "seconds_to_first_answer_of_new_version": first_answers,
        "p99_ms_pairs_swap_vs_steady_before": pairs,
        "swap_p99_vs_steady_per_promotion": ratios,
        "swap_p99_vs_steady": float(np.median(ratios)) if ratios else None,
        "pooled_p99_ms_swap": _p99_ms(latency[swap_all]),
        "pooled_p99_ms_steady": _p99_ms(latency[steady_all]),
        "steady_p50_ms": round(float(np.percentile(latency[steady_all], 50)) * 1e3, 3),
        "server_side_p99_ms_swap": _server_p99_ms(server["swap"]),
        "server_side_p99_ms_steady": _server_p99_ms(server["steady"]),
    }


def _sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.monotonic(), 0.0))


def _shadow(client: ProcessPoolExecutor, target: str, metrics: str, registry: Any,
            quick: bool) -> dict[str, Any]:  # fmt: skip
    """Alternated rounds without and with a 100 % shadow of version 2, each shadow round paired
    with the round just before it; the median of the per-pair p99 ratios is the figure."""
    from pipeline.canary_metrics import scrape
    from registry import traffic

    seconds, rounds = (1.5, 1) if quick else (3.0, 8)
    pairs: list[tuple[float | None, float | None]] = []
    failed = requests = shadowed = 0
    server: dict[str, list[tuple[dict[float, float], dict[float, float]]]] = {
        "none": [], "shadow": [],
    }  # fmt: skip
    for _ in range(rounds):
        pair = []
        for mode in ("none", "shadow"):
            if mode == "shadow":
                traffic.set_shadow(registry, MODEL, 2, 100, reason="bench/rollout.py")
            time.sleep(2 * POLL_S + 0.2)  # every poll has seen it
            before = _server_buckets(metrics)
            data = {
                k: np.asarray(v) for k, v in client.submit(load, target, seconds).result().items()
            }
            server[mode].append((before, _server_buckets(metrics)))
            pair.append(_p99_ms(data["latency"]))
            failed += int((~data["ok"]).sum())
            requests += len(data["ok"])
            shadowed += len(data["ok"]) if mode == "shadow" else 0
            if mode == "shadow":
                traffic.stop_shadow(registry, MODEL, reason="bench/rollout.py")
        pairs.append((pair[1], pair[0]))
    stats = scrape([metrics]).of(2)
    ratios = [round(a / b, 3) for a, b in pairs if a and b]
    return {
        "rounds": rounds,
        "seconds_per_round": seconds,
        "requests": requests,
        "failed_requests": failed,
        "p99_ms_pairs_shadow_vs_none": pairs,
        "shadow_p99_vs_none_per_round": ratios,
        "shadow_p99_vs_none": float(np.median(ratios)) if ratios else None,
        "server_side_p99_ms_none": _server_p99_ms(server["none"]),
        "server_side_p99_ms_shadow": _server_p99_ms(server["shadow"]),
        "shadow_rows_compared": stats.compared,
        "shadow_rows_of_shadow_round_requests": round(stats.compared / shadowed, 3),
    }


@contextlib.contextmanager
def _server(work: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`digits serve` as shipped (batching off) on free ports: (gRPC target, metrics address)."""
    port, metrics_port = launcher.free_port(), launcher.free_port()
    command = [
        *(sys.executable, "-m", "cli", "serve", "--registry", str(work / "models")),
        *("--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)),
    ]
    log = work / "digits-serve-rollout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            launcher._wait_serving(process, f"127.0.0.1:{port}", timeout_s=60.0, log=log)
            yield f"127.0.0.1:{port}", f"127.0.0.1:{metrics_port}"
        finally:
            launcher._stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (smoke test)")
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "rollout.json")
    args = parser.parse_args(argv)
    blas = {name: str(args.blas_threads) for name in _BLAS_VARS}
    os.environ.update(blas)
    from registry import Registry
    from tests.helpers.toy_models import toy_params

    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rollout-", dir=RESULTS))
    registry = Registry(work / "models")
    for seed in (1, 2):
        registry.publish(MODEL, toy_params(seed), {"seed": seed})
    registry.set_alias(MODEL, "production", 1)
    env = {**blas, "DIGITS_POLL_INTERVAL_S": str(POLL_S), "DIGITS_LOG_LEVEL": "WARNING"}
    report: dict[str, Any] = {
        "benchmark": "rollout", "quick": args.quick, "concurrency": CONCURRENCY, "batch": 1,
        "poll_interval_s": POLL_S, "swap_window_s": SWAP_WINDOW_S,
        "machine": {"cpus": os.cpu_count(), "blas_threads_per_server": args.blas_threads,
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }  # fmt: skip
    spawn = multiprocessing.get_context("spawn")
    with _server(work, env) as (target, metrics), \
            ProcessPoolExecutor(max_workers=1, mp_context=spawn) as client:  # fmt: skip
        client.submit(load, target, 0.5).result()  # imports and connections, untimed
        report["swap"] = _swap(client, target, metrics, registry, args.quick)
        registry.set_alias(MODEL, "production", 1, reason="bench/rollout.py")
        report["shadow"] = _shadow(client, target, metrics, registry, args.quick)
    swap, shadow = report["swap"], report["shadow"]
    report["targets"] = {
        "failed_requests": {
            "target": 0, "measured": swap["failed_requests"] + shadow["failed_requests"],
        },
        "swap_p99_vs_steady": {"target_max": 1.2, "measured": swap["swap_p99_vs_steady"]},
        "shadow_p99_vs_none": {"target_max": 1.1, "measured": shadow["shadow_p99_vs_none"]},
    }  # fmt: skip
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(report, indent=2)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

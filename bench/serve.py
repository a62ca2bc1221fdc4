"""Serving benchmark: digits.v1 (unary, stream), V2 (gRPC and REST) and MLServer 1.7.1, JSON out.

Triton's perf_analyzer (bench/triton_perf.py) also measures the V2 endpoint, beside our own
load generator's V2 points.

    .venv/bin/python bench/serve.py [--quick] [--duration 4] [--client native|python]
                                    [--skip-rest] [--out bench/results/serve.json]

Servers run in their own processes on 127.0.0.1; the load generator runs in another process
(multiprocessing, spawn), so neither competes with the other's interpreter lock. It is the C++
generator of bench/native/ (built on first use: g++ and libgrpc++-dev, installed with apt when
run as root) unless that cannot be built or `--client python` asks for the grpc.aio one. Every
figure has a reference measured in the same run: MLServer serving the same weights with the same
NumPy forward pass, and the in-process `Predictor.predict_proba` throughput as the ceiling.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "bench" / "mlserver")]

import launcher  # noqa: E402  (bench/mlserver/launcher.py)
import loadgen  # noqa: E402  (bench/mlserver/loadgen.py)
import rest  # noqa: E402  (bench/rest.py: the REST points, MLServer's REST endpoint beside)
import triton_perf  # noqa: E402  (bench/triton_perf.py)

RESULTS = ROOT / "bench" / "results"
MODEL = "digits"
BATCH1_CONCURRENCY = (1, 8, 32)
HEADLINE_ROUNDS = 5  # alternated runs of the batch 1 x 32 point, ours vs MLServer (--rounds)
BIG_BATCHES = (64, 1024)
BIG_BATCH_CONCURRENCY = 4  # enough in flight to keep the server busy while the client packs
STREAM_SHAPES = ((1, 32), (4, 8))  # (streams, messages in flight per stream): 32 in flight each
DTYPES = ("uint8", "float32")
TARGETS = {
    "unary_batch1_c32_vs_mlserver": 1.5,
    "p99_ms_max": 20.0,
    "stream_vs_mlserver": 3.0,
    "batch1024_uint8_vs_ceiling": 0.4,
    "rest_json_vs_mlserver_json": rest.TARGET_VS_MLSERVER,
}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    duration = 1.0 if args.quick else args.duration
    blas_env = {name: str(args.blas_threads) for name in _BLAS_VARS}
    os.environ.update(blas_env)  # before numpy's BLAS spins up threads in this process
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="serve-", dir=RESULTS))
    registry, params = _model(args.registry, work)
    weights = _safetensors(params, work / "weights.safetensors")
    native, client_note = _load_generator(args.client)
    report: dict[str, Any] = {
        "benchmark": "serve",
        "quick": args.quick,
        "seconds_per_point": duration,
        "machine": {**_machine(args.blas_threads), "load_generator": client_note},
        "ceiling_in_process": _ceiling(params, duration, args.blas_threads),
    }
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as client:
        client.submit(loadgen.warm_up).result()  # import grpc/protobuf once, outside the timings
        run = _Runner(client, duration, native)
        default = _default_batching()
        for batching in (default, not default):  # "digits" is the server as shipped
            key = (
                "digits"
                if batching == default
                else f"digits_batching_{'on' if batching else 'off'}"
            )
            with launcher.running_digits(
                registry, blas_env, batching=batching, log_dir=work
            ) as target:
                report[key] = _measure_digits(run, target, full=batching == default)
        if args.skip_mlserver:
            report["mlserver"] = {"skipped": "--skip-mlserver"}
        else:
            try:
                report["mlserver"] = _measure_mlserver(run, weights, blas_env, work)
            except (RuntimeError, OSError, subprocess.SubprocessError) as err:  # install or start
                report["mlserver"] = {"failed": str(err)}
        if "failed" not in report["mlserver"] and "skipped" not in report["mlserver"]:
            report["headline"] = _measure_headline(
                run, registry, weights, blas_env, work, args.rounds
            )
        report["rest"] = _measure_rest(run, registry, weights, blas_env, work, args, duration)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = _targets(report)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _default_batching() -> bool:
    """`digits serve`'s default for dynamic batching (ServiceSettings.batching)."""
    from service.settings import ServiceSettings

    return bool(ServiceSettings.model_fields["batching"].default)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per point: a smoke run")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per point (4)")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per server (1)")
    parser.add_argument(
        "--registry",
        type=Path,
        help="serve this registry's production model "
        "(default: a fresh untrained 784-128-40-10 model; speed is the same)",
    )
    parser.add_argument(
        "--client",
        choices=("native", "python"),
        default="native",
        help="load generator: the C++ one (default; falls back to python if it cannot be built)"
        " or the grpc.aio one",
    )
    parser.add_argument("--skip-mlserver", action="store_true", help="no MLServer reference")
    parser.add_argument("--skip-rest", action="store_true", help="no REST points (bench/rest.py)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=HEADLINE_ROUNDS,
        help=f"alternated runs of the batch 1 x 32 point, ours vs MLServer ({HEADLINE_ROUNDS})",
    )
    parser.add_argument("--out", default=str(RESULTS / "serve.json"), help="JSON file to write")
    return parser.parse_args(argv)


def _model(registry: Path | None, work: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The registry to serve and its production weights (a fresh seeded model by default)."""
    from core import MLP
    from registry import Registry

    if registry is not None:
        return registry, dict(Registry(registry).load(MODEL).params)
    params = {k: np.ascontiguousarray(v) for k, v in MLP((784, 128, 40, 10), seed=0).params.items()}
    fresh = Registry(work / "registry")
    version = fresh.publish(
        MODEL, params, {"layer_sizes": [784, 128, 40, 10], "loss": "cross_entropy", "metrics": {}}
    ).version
    fresh.set_alias(MODEL, "production", version)
    return fresh.root, params


def _safetensors(params: dict[str, np.ndarray], path: Path) -> Path:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}, str(path))
    return path


def _machine(blas_threads: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_threads_per_server": blas_threads,
        "blas": [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads")}
            for i in threadpool_info()
        ],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _load_generator(choice: str) -> tuple[str, str]:
    """The native generator's binary ("" for grpc.aio) and a line saying which one runs and why."""
    python = "1 separate process, grpc.aio, pre-serialised requests"
    if choice == "python":
        return "", python
    build = subprocess.run(  # prints the binary, built once per version of its source
        ["bash", str(ROOT / "bench" / "native" / "build.sh")], capture_output=True, text=True
    )
    if build.returncode != 0:
        reason = (build.stderr.strip().splitlines() or ["build failed"])[-1]
        print(f"native load generator unavailable ({reason}); using grpc.aio", file=sys.stderr)
        return "", f"{python} (native build failed: {reason})"
    native = "1 separate process, C++ grpc++ generic stub, 1 completion-queue thread, "
    return build.stdout.strip(), native + "pre-serialised requests"


def _ceiling(params: dict[str, np.ndarray], duration: float, threads: int) -> dict[str, Any]:
    """In-process Predictor.predict_proba samples/s: what a server could reach with free I/O."""
    from threadpoolctl import threadpool_limits

    from service.serving.model import Predictor

    predictor = Predictor(params)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"blas_threads": threads}
    with threadpool_limits(limits=threads):
        for dtype in DTYPES:
            for batch in (1, *BIG_BATCHES, 512):
                x = loadgen.images(rng, batch, dtype)
                best = 0.0
                for _ in range(3):  # best of 3, as timeit does: noise only ever slows a run
                    calls, start = 0, time.perf_counter()
                    while (elapsed := time.perf_counter() - start) < min(duration, 2.0) / 3:
                        predictor.predict_proba(x)
                        calls += 1
                    best = max(best, calls * batch / elapsed)
                out[f"batch{batch}_{dtype}_samples_per_s"] = round(best)
    return out


@dataclass(frozen=True)
class _Runner:
    """Runs points in the load-generator process, with one engine and one duration."""

    client: ProcessPoolExecutor
    duration: float
    native: str  # the C++ generator's binary, "" for grpc.aio

    def point(
        self,
        protocol: str,
        target: str,
        batch: int,
        dtype: str,
        concurrency: int,
        streams: int = 0,
    ) -> dict[str, Any]:
        spec = loadgen.Spec(
            protocol, target, batch, dtype, concurrency, self.duration, streams, self.native
        )
        return dict(self.client.submit(loadgen.run, spec).result())

    def v2_ready(self, target: str) -> bool:
        return bool(self.client.submit(loadgen.v2_ready, target).result())


def _measure_digits(run: _Runner, target: str, full: bool) -> dict[str, Any]:
    points: dict[str, Any] = {}
    dtypes = DTYPES if full else ("uint8",)
    for dtype in dtypes:
        for concurrency in BATCH1_CONCURRENCY:
            points[f"unary_batch1_c{concurrency}_{dtype}"] = run.point(
                "digits", target, 1, dtype, concurrency
            )
    for streams, window in STREAM_SHAPES:
        points[f"stream_batch1_s{streams}x{window}_uint8"] = run.point(
            "digits", target, 1, "uint8", window, streams
        )
    if not full:
        return points
    for dtype in dtypes:
        for batch in BIG_BATCHES:
            points[f"unary_batch{batch}_{dtype}"] = run.point(
                "digits", target, batch, dtype, BIG_BATCH_CONCURRENCY
            )
    points["v2"] = _measure_v2(run, target, dtypes=("uint8",))
    points["v2"]["perf_analyzer"] = _measure_perf_analyzer(run.duration, target)
    return points


PERF_ANALYZER_POINTS = ((1, 32), (64, BIG_BATCH_CONCURRENCY))  # (batch, concurrency)


def _measure_perf_analyzer(duration: float, target: str) -> dict[str, Any]:
    """Triton's own load tool on the V2 endpoint, beside our generator's V2 points: the same
    (batch, concurrency) shapes, measured by perf_analyzer (windows of `duration` s)."""
    reason = triton_perf.command()
    if isinstance(reason, str):
        return {"skipped": reason}
    return {
        f"unary_batch{batch}_c{concurrency}_uint8": triton_perf.measure(
            target, concurrency=concurrency, batch=batch, window_ms=int(duration * 1000), trials=4
        )
        for batch, concurrency in PERF_ANALYZER_POINTS
    }


def _measure_v2(run: _Runner, target: str, dtypes: tuple[str, ...]) -> dict[str, Any]:
    if not run.v2_ready(target):
        return {"skipped": f"no ready V2 model {MODEL!r} at {target} (ModelReady failed)"}
    points: dict[str, Any] = {}
    for dtype in dtypes:
        for concurrency in BATCH1_CONCURRENCY:
            points[f"unary_batch1_c{concurrency}_{dtype}"] = run.point(
                "v2", target, 1, dtype, concurrency
            )
        for batch in BIG_BATCHES:
            points[f"unary_batch{batch}_{dtype}"] = run.point(
                "v2", target, batch, dtype, BIG_BATCH_CONCURRENCY
            )
    return points


def _measure_mlserver(
    run: _Runner, weights: Path, blas_env: dict[str, str], work: Path
) -> dict[str, Any]:
    venv = RESULTS / ".venv-mlserver"
    launcher.ensure_venv(venv, RESULTS / "mlserver-install.log")
    grpc_port, http_port = launcher.free_port(), launcher.free_port()
    repository = launcher.write_repository(work / "mlserver", weights, grpc_port, http_port)
    target = f"127.0.0.1:{grpc_port}"
    with launcher.running_mlserver(venv, repository, grpc_port, blas_env):
        points = _measure_v2(run, target, dtypes=DTYPES)
        for streams, window in STREAM_SHAPES:  # ModelStreamInfer, one answer per request
            points[f"stream_batch1_s{streams}x{window}_uint8"] = run.point(
                "v2", target, 1, "uint8", window, streams
            )
    points["version"] = launcher.MLSERVER_VERSION
    points["settings"] = "parallel_workers 0, metrics endpoint off, same NumPy forward pass"
    return points


def _measure_headline(
    run: _Runner,
    registry: Path,
    weights: Path,
    blas_env: dict[str, str],
    work: Path,
    rounds: int,
) -> dict[str, Any]:
    """The target's point (unary, batch 1, 32 in flight, uint8), ours and MLServer's, alternated
    `rounds` times with both servers up; each figure is the median over the rounds.

    On a shared machine the speed drifts by +-15% between minutes, more than between two
    servers measured back to back, so the one-off points above are not compared for the target.
    """
    venv = RESULTS / ".venv-mlserver"
    grpc_port, http_port = launcher.free_port(), launcher.free_port()
    run_dir = work / "mlserver-headline"
    repository = launcher.write_repository(run_dir, weights, grpc_port, http_port)
    runs: dict[str, list[dict[str, Any]]] = {"digits": [], "mlserver": []}
    with (
        launcher.running_digits(
            registry, blas_env, batching=_default_batching(), log_dir=work, log_name="headline"
        ) as ours,
        launcher.running_mlserver(venv, repository, grpc_port, blas_env),
    ):
        targets = {"digits": ("digits", ours), "mlserver": ("v2", f"127.0.0.1:{grpc_port}")}
        for _ in range(rounds):
            for name, (protocol, target) in targets.items():
                runs[name].append(run.point(protocol, target, 1, "uint8", 32))
    return {
        "point": "unary, batch 1, 32 in flight, uint8; medians of alternated rounds",
        "rounds": rounds,
        **{name: _median_point(points) for name, points in runs.items()},
        "runs": {
            name: [{k: p.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms")} for p in points]
            for name, points in runs.items()
        },
    }


def _measure_rest(
    run: _Runner,
    registry: Path,
    weights: Path,
    blas_env: dict[str, str],
    work: Path,
    args: argparse.Namespace,
    duration: float,
) -> dict[str, Any]:
    """bench/rest.py's points (REST vs MLServer REST; gRPC with the HTTP edge on and off)."""
    if args.skip_rest or args.skip_mlserver:
        return {"skipped": "--skip-rest" if args.skip_rest else "--skip-mlserver"}
    try:
        return rest.measure(
            run, registry, weights, blas_env, work, duration=duration, rounds=args.rounds
        )
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:  # wrk or a server
        return {"failed": str(err)}


def _median_point(points: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [p["failed"] for p in points if "failed" in p]
    if failed:
        return {"failed": failed[0]}
    fields = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")
    median = {f: round(float(np.median([p[f] for p in points])), 3) for f in fields}
    return {**median, "errors": sum(p["errors"] for p in points)}


_DEFINITIONS = {
    "unary_batch1_c32": "digits.v1 Predict, 1 uint8 image, 32 in flight, vs MLServer ModelInfer:"
    " medians of the alternated headline rounds (the one-off points when there are none)",
    "stream": "best digits.v1 PredictStream point (32 in flight) vs MLServer unary batch 1 x 32",
    "batch1024_uint8_vs_ceiling": "server samples/s at batch 1024 uint8 / in-process predict_proba",
    "rest": "V2 REST ModelInfer, 1 uint8 image, 32 in flight (wrk), vs MLServer's REST endpoint:"
    " medians of alternated rounds (bench/rest.py); target rest_json_vs_mlserver >= 1.5",
}


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    """Ratios against MLServer and the ceiling, and whether each issue target is met.

    A ratio whose points failed or were skipped is left out, and its target reads None.
    """
    ours, ml = report["digits"], report["mlserver"]
    out: dict[str, Any] = {"thresholds": TARGETS, "definitions": _DEFINITIONS}
    ceiling = report["ceiling_in_process"]["batch1024_uint8_samples_per_s"]
    big = _figure(ours, "unary_batch1024_uint8", "samples_per_s")
    out["batch1024_uint8_vs_ceiling"] = _ratio(big, ceiling)
    out["batch1024_uint8_met"] = _at_least(big, ceiling, TARGETS["batch1024_uint8_vs_ceiling"])
    c32, ml_c32 = (_figure(p, "unary_batch1_c32_uint8") for p in (ours, ml))
    p99 = _figure(ours, "unary_batch1_c32_uint8", "p99_ms")
    headline = report.get("headline")
    if headline:
        c32, ml_c32 = (_figure(headline, name) for name in ("digits", "mlserver"))
        p99 = _figure(headline, "digits", "p99_ms")
    out["unary_batch1_c32_p99_ms"] = p99
    out["unary_batch1_c32_vs_mlserver"] = _ratio(c32, ml_c32)
    fast_enough = _at_least(c32, ml_c32, TARGETS["unary_batch1_c32_vs_mlserver"])
    out["unary_batch1_c32_met"] = (
        None
        if fast_enough is None or p99 is None
        else (fast_enough and p99 <= TARGETS["p99_ms_max"])
    )
    stream, ml_stream = (_best(p, "stream_") for p in (ours, ml))
    out["stream_vs_mlserver_unary_c32"] = _ratio(stream, ml_c32)
    out["stream_met"] = _at_least(stream, ml_c32, TARGETS["stream_vs_mlserver"])
    out["stream_vs_mlserver_stream"] = _ratio(stream, ml_stream)
    for batch in BIG_BATCHES:
        for dtype in DTYPES:
            key = f"unary_batch{batch}_{dtype}"
            out[f"{key}_vs_mlserver"] = _ratio(
                *(_figure(p, key, "samples_per_s") for p in (ours, ml))
            )
    v2_c32 = _figure(ours.get("v2", {}), "unary_batch1_c32_uint8")
    out["v2_unary_batch1_c32_vs_mlserver"] = _ratio(v2_c32, ml_c32)
    rest_ratios = report.get("rest", {}).get("ratios", {})
    for key in ("digits_json_vs_mlserver_json", "digits_binary_vs_mlserver_json",
                "grpc_http_on_vs_off", "json_met"):  # fmt: skip
        out[f"rest_{key}"] = rest_ratios.get(key)
    return out


def _figure(points: dict[str, Any], key: str, field: str = "requests_per_s") -> float | None:
    value = points.get(key, {}).get(field)
    return float(value) if value else None


def _best(points: dict[str, Any], prefix: str) -> float | None:
    rates = [_figure(points, key) for key in points if key.startswith(prefix)]
    return max((rate for rate in rates if rate), default=None)


def _ratio(ours: float | None, reference: float | None) -> float | None:
    return round(ours / reference, 3) if ours and reference else None


def _at_least(ours: float | None, reference: float | None, factor: float) -> bool | None:
    ratio = _ratio(ours, reference)
    return None if ratio is None else ratio >= factor


if __name__ == "__main__":
    sys.exit(main())

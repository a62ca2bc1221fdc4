"""Closed-loop gRPC load generator for digits.v1 and V2 servers: latency and throughput.

Runs in its own process (bench/serve.py submits `run` to a spawned worker). Requests are
serialised once and responses are taken as raw bytes, so the figures measure the server, not
this client's protobuf work; the first response of every point is parsed and checked.
Two engines drive the same points: the C++ one (bench/native/loadgen.cc, when `Spec.native`
names its binary), which leaves nearly all of a small machine's CPU to the server under test,
and a grpc.aio one here, which needs nothing but grpcio (~0.4 ms of CPU per request).
It imports tritonclient's V2 messages, never the server's own, because protobuf refuses two
definitions of `inference.*` in one process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

_METHODS = {
    ("digits", False): "/digits.v1.DigitClassifier/Predict",
    ("digits", True): "/digits.v1.DigitClassifier/PredictStream",
    ("v2", False): "/inference.GRPCInferenceService/ModelInfer",
    ("v2", True): "/inference.GRPCInferenceService/ModelStreamInfer",
}
_MODEL = "digits"
_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]
_MAX_ERRORS = 50  # stop a point early instead of spinning on a broken server


@dataclass(frozen=True)
class Spec:
    """One measurement point."""

    protocol: str  # "digits" (digits.v1) or "v2" (Open Inference Protocol ModelInfer)
    target: str  # HOST:PORT
    batch: int  # images per request
    dtype: str  # "uint8" or "float32"
    concurrency: int  # requests in flight (per stream when streams > 0)
    duration: float  # seconds measured, after a short warm-up
    streams: int = 0  # > 0: that many bidi streams (PredictStream / ModelStreamInfer), not unary
    native: str = ""  # path of the C++ load generator's binary; "" = the grpc.aio engine


def images(rng: np.random.Generator, batch: int, dtype: str) -> np.ndarray:
    """Random pixel rows (batch, 784): uint8 0..255 or float32 in [0, 1]."""
    pixels = rng.integers(0, 256, size=(batch, 784), dtype=np.uint8)
    return pixels if dtype == "uint8" else pixels.astype(np.float32) / np.float32(255.0)


def warm_up() -> None:
    """Import the message modules once so the first point does not pay for it."""
    _request_bytes(Spec("digits", "", 1, "uint8", 1, 0.0))
    _request_bytes(Spec("v2", "", 1, "uint8", 1, 0.0))


def run(spec: Spec) -> dict[str, Any]:
    """Measure one point: requests/s, samples/s, latency percentiles (ms), errors.

    A point that cannot run (server down, wrong answer) is reported as `failed`, so one broken
    point does not cost the rest of the benchmark.
    """
    try:
        return _run_native(spec) if spec.native else asyncio.run(_run(spec))
    except (grpc.RpcError, RuntimeError, OSError, subprocess.SubprocessError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return {"protocol": spec.protocol, "batch": spec.batch, "failed": reason}


def v2_ready(target: str) -> bool:
    """True when `target` answers V2 ModelReady(digits) with ready."""
    from tritonclient.grpc import service_pb2 as v2

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelReady",
            request_serializer=v2.ModelReadyRequest.SerializeToString,
            response_deserializer=v2.ModelReadyResponse.FromString,
        )
        try:
            return bool(call(v2.ModelReadyRequest(name=_MODEL), timeout=5.0).ready)
        except grpc.RpcError:
            return False


def _warm_up_seconds(spec: Spec) -> float:
    return min(0.5, spec.duration / 4)


async def _run(spec: Spec) -> dict[str, Any]:
    request = _request_bytes(spec)
    async with grpc.aio.insecure_channel(spec.target, options=_OPTIONS) as channel:
        check = channel.unary_unary(_METHODS[(spec.protocol, False)])
        _check_response(spec, await check(request, timeout=30.0))
        await _phase(channel, spec, request, seconds=_warm_up_seconds(spec))
        latencies, errors, elapsed = await _phase(channel, spec, request, spec.duration)
    done = len(latencies)
    ms = np.asarray(latencies) * 1e3 if done else np.zeros(1)
    percentiles = {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}
    first = errors[0] if errors else None
    return _point(spec, "grpc.aio", done, elapsed, percentiles, len(errors), first)


def _run_native(spec: Spec) -> dict[str, Any]:
    """The same point driven by the C++ generator; its one checked answer comes back as a file."""
    request = _request_bytes(spec)
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        request_file, answer_file = Path(tmp, "request.bin"), Path(tmp, "answer.bin")
        request_file.write_bytes(request)
        command = [
            spec.native,
            "--target", spec.target,
            "--method", _METHODS[(spec.protocol, bool(spec.streams))],
            "--request", str(request_file),
            "--concurrency", str(spec.concurrency),
            "--streams", str(spec.streams),
            "--duration", str(spec.duration),
            "--warmup", str(_warm_up_seconds(spec)),
            "--check-out", str(answer_file),
            "--check-method", _METHODS[(spec.protocol, False)],
        ]  # fmt: skip
        timeout = spec.duration + 120.0  # its calls have 30 s deadlines, streams 60 s more
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"native load generator failed: {done.stderr.strip()[:300]}")
        result = json.loads(done.stdout)
        if "failed" in result:
            raise RuntimeError(result["failed"])
        _check_response(spec, answer_file.read_bytes())
    percentiles = {key: round(float(result[key]), 3) for key in ("p50_ms", "p90_ms", "p99_ms")}
    done, elapsed, errors = result["requests"], result["elapsed_s"], result["errors"]
    return _point(spec, "native", done, elapsed, percentiles, errors, result.get("first_error"))


def _point(
    spec: Spec,
    engine: str,
    done: int,
    elapsed: float,
    percentiles: dict[str, float],
    errors: int,
    first_error: str | None,  # "CODE: details" of the first failed call
) -> dict[str, Any]:
    return {
        "protocol": spec.protocol,
        "mode": f"stream x{spec.streams}" if spec.streams else "unary",
        "client": engine,
        "batch": spec.batch,
        "dtype": spec.dtype,
        "in_flight": spec.concurrency * max(spec.streams, 1),
        "requests": done,
        "requests_per_s": round(done / elapsed, 1),
        "samples_per_s": round(done * spec.batch / elapsed),
        **percentiles,
        "errors": errors,
        **({"first_error": first_error} if first_error else {}),
    }


async def _phase(
    channel: grpc.aio.Channel, spec: Spec, request: bytes, seconds: float
) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    stop_at = start + seconds
    if spec.streams:
        method = channel.stream_stream(_METHODS[(spec.protocol, True)])
        workers = [
            _stream(method, request, spec.concurrency, stop_at, latencies, errors)
            for _ in range(spec.streams)
        ]
    else:
        method = channel.unary_unary(_METHODS[(spec.protocol, False)])
        workers = [
            _unary(method, request, stop_at, latencies, errors) for _ in range(spec.concurrency)
        ]
    await asyncio.gather(*workers)
    return latencies, errors, time.perf_counter() - start


async def _unary(
    method: Any, request: bytes, stop_at: float, latencies: list[float], errors: list[str]
) -> None:
    while (sent := time.perf_counter()) < stop_at and len(errors) < _MAX_ERRORS:
        try:
            await method(request, timeout=30.0)
        except grpc.aio.AioRpcError as err:
            errors.append(f"{err.code().name}: {err.details()}")
            continue
        latencies.append(time.perf_counter() - sent)


async def _stream(
    method: Any,
    request: bytes,
    window: int,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    """One bidi stream with `window` messages in flight; answers come back in request order."""
    call = method(timeout=max(60.0, stop_at - time.perf_counter() + 30.0))
    sent: deque[float] = deque()
    slots = asyncio.Semaphore(window)

    async def write() -> None:
        while time.perf_counter() < stop_at:
            await slots.acquire()
            sent.append(time.perf_counter())
            await call.write(request)
        await call.done_writing()

    async def read() -> None:
        async for _answer in call:
            latencies.append(time.perf_counter() - sent.popleft())
            slots.release()

    try:
        await asyncio.gather(write(), read())
    except grpc.aio.AioRpcError as err:
        errors.append(f"{err.code().name}: {err.details()}")


def _request_bytes(spec: Spec) -> bytes:
    x = images(np.random.default_rng(spec.batch), spec.batch, spec.dtype)
    if spec.protocol == "digits":
        from service.generated.digits.v1 import digits_pb2 as pb

        dtype = pb.DTYPE_UINT8 if spec.dtype == "uint8" else pb.DTYPE_FLOAT32
        tensor = pb.Tensor(data=x.tobytes(), dtype=dtype, shape=x.shape)
        return pb.PredictRequest(images=tensor).SerializeToString()
    from tritonclient.grpc import service_pb2 as v2

    datatype = "UINT8" if spec.dtype == "uint8" else "FP32"
    tensor = v2.ModelInferRequest.InferInputTensor(name="images", datatype=datatype, shape=x.shape)
    infer = v2.ModelInferRequest(
        model_name=_MODEL, inputs=[tensor], raw_input_contents=[x.tobytes()]
    )
    return infer.SerializeToString()


def _check_response(spec: Spec, answer: bytes) -> None:
    """Refuse to time a server whose answer is not (batch, 10) probabilities."""
    if spec.protocol == "digits":
        from service.generated.digits.v1 import digits_pb2 as pb

        reply = pb.PredictResponse.FromString(answer)
        shape = list(reply.probabilities.shape)
    else:
        from tritonclient.grpc import service_pb2 as v2

        outputs = v2.ModelInferResponse.FromString(answer).outputs
        shape = next((list(o.shape) for o in outputs if o.name == "probabilities"), [])
    if shape != [spec.batch, 10]:
        raise RuntimeError(f"{spec.target} answered probabilities of shape {shape}")

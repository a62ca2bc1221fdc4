"""REST points of the serving benchmark: digits' HTTP edge vs MLServer's REST endpoint, and gRPC
with the HTTP edge on vs off. Part of bench/serve.py's report (`rest`); runs alone too:

    .venv/bin/python bench/rest.py [--duration 4] [--rounds 5] [--out bench/results/rest.json]

The HTTP load generator is wrk (Debian's package, C, one thread, 32 keep-alive connections,
closed loop), the gRPC one bench/serve.py's. Every point is batch 1 (one uint8 image), 32 in
flight, measured in alternated rounds with all servers up; figures are medians over the rounds.
Both servers compute the same NumPy forward pass on the same weights, checked before timing.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "mlserver"), str(ROOT / "bench")]

import launcher  # noqa: E402  (bench/mlserver/launcher.py)
import wrk  # noqa: E402  (bench/mlserver/wrk.py)

MODEL = "digits"
TARGET_VS_MLSERVER = 1.5
_FIELDS = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")


def bodies(seed: int = 0) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Batch-1 uint8 inference bodies: V2 JSON, and the binary tensor data extension."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(1, 784), dtype=np.uint8)
    tensor = {"name": "images", "datatype": "UINT8", "shape": [1, 784]}
    as_json = json.dumps({"inputs": [{**tensor, "data": pixels.ravel().tolist()}]}).encode()
    header = json.dumps({
        "inputs": [{**tensor, "parameters": {"binary_data_size": pixels.nbytes}}],
        "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in ("probabilities",
                                                                               "label")],
    }).encode()  # fmt: skip
    binary_headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return {
        "json": (as_json, {"Content-Type": "application/json"}),
        "binary": (header + pixels.tobytes(), binary_headers),
    }


def probabilities(url: str, body: bytes, headers: dict[str, str]) -> np.ndarray:
    """POST one request and decode its `probabilities` output (JSON or binary); RuntimeError
    when the server refuses it."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            content, size = response.read(), response.headers.get("Inference-Header-Content-Length")
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"HTTP {err.code}: {err.read()[:200]!r}") from None
    head = json.loads(content[: int(size)] if size else content)
    offset = int(size or 0)
    for output in head["outputs"]:
        binary = output.get("parameters", {}).get("binary_data_size")
        if output["name"] == "probabilities":
            if binary:
                return np.frombuffer(content[offset : offset + binary], "<f4").reshape(-1, 10)
            return np.asarray(output["data"], dtype=np.float32).reshape(-1, 10)
        offset += binary or 0
    raise RuntimeError("no probabilities output in the answer")


def measure(
    run: Any,
    registry: Path,
    weights: Path,
    blas_env: dict[str, str],
    work: Path,
    *,
    duration: float,
    rounds: int,
) -> dict[str, Any]:
    """REST points (ours JSON and binary, MLServer JSON and binary when it takes it) and the
    gRPC batch 1 x 32 point with our HTTP edge on and off, in `rounds` alternated rounds.

    `run` is bench/serve.py's runner (its gRPC load generator process).
    """
    venv = RESULTS / ".venv-mlserver"
    launcher.ensure_venv(venv, RESULTS / "mlserver-install.log")
    wrk.ensure_wrk()
    http_port, ml_grpc, ml_http = (launcher.free_port() for _ in range(3))
    repository = launcher.write_repository(work / "mlserver-rest", weights, ml_grpc, ml_http)
    requests = bodies()
    with (
        launcher.running_digits(
            registry, blas_env, batching=False, log_dir=work, log_name="rest", http_port=http_port
        ) as with_http,
        launcher.running_digits(
            registry, blas_env, batching=False, log_dir=work, log_name="grpc-only"
        ) as grpc_only,
        launcher.running_mlserver(venv, repository, ml_grpc, blas_env),
    ):
        ours = f"http://127.0.0.1:{http_port}/v2/models/{MODEL}/infer"
        theirs = f"http://127.0.0.1:{ml_http}/v2/models/{MODEL}/infer"
        rest_points, notes = _checked_points(ours, theirs, requests)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in rest_points}
        runs.update(grpc_http_on=[], grpc_http_off=[])
        for _ in range(rounds):
            for name, (url, (body, headers)) in rest_points.items():
                runs[name].append(wrk.point(url, body, headers, duration=duration))
            runs["grpc_http_on"].append(run.point("digits", with_http, 1, "uint8", 32))
            runs["grpc_http_off"].append(run.point("digits", grpc_only, 1, "uint8", 32))
    medians = {name: _median(points) for name, points in runs.items()}
    return {
        "point": "batch 1 (one uint8 image), 32 in flight; medians of alternated rounds",
        "rounds": rounds,
        "http_load_generator": "wrk 1 thread, 32 keep-alive connections (closed loop)",
        "notes": notes,
        **medians,
        "runs": {
            name: [{k: p.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms")} for p in points]
            for name, points in runs.items()
        },
        "ratios": _ratios(medians, runs),
    }


def _checked_points(
    ours: str, theirs: str, requests: dict[str, tuple[bytes, dict[str, str]]]
) -> tuple[dict[str, tuple[str, tuple[bytes, dict[str, str]]]], list[str]]:
    """The points to time, after checking that every server answers them alike."""
    reference = probabilities(ours, *requests["json"])
    points = {f"digits_{kind}": (ours, requests[kind]) for kind in ("json", "binary")}
    notes: list[str] = []
    for kind in ("json", "binary"):
        np.testing.assert_allclose(probabilities(ours, *requests[kind]), reference, atol=1e-6)
        try:
            answer = probabilities(theirs, *requests[kind])
        except (RuntimeError, ValueError, KeyError) as err:  # MLServer may not take this form
            notes.append(f"MLServer REST refuses the {kind} request ({err}); not timed")
            continue
        np.testing.assert_allclose(answer, reference, atol=1e-5)  # same weights, same math
        points[f"mlserver_{kind}"] = (theirs, requests[kind])
    return points, notes


def _median(points: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [p["failed"] for p in points if "failed" in p]
    if failed:
        return {"failed": failed[0]}
    median = {
        f: round(float(np.median([p[f] for p in points])), 3)
        for f in _FIELDS
        if all(f in p for p in points)
    }
    return {**median, "errors": sum(p.get("errors", 0) for p in points)}


def _ratios(
    medians: dict[str, dict[str, Any]], runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Ratios of the medians, and (`per_round`) the median of each round's own ratio, which a
    busy machine's drift between rounds moves less."""

    def rate(name: str) -> float | None:
        value = medians.get(name, {}).get("requests_per_s")
        return float(value) if value else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    def per_round(ours: str, reference: str) -> float | None:
        pairs = zip(runs.get(ours, []), runs.get(reference, []), strict=False)
        ratios = [a["requests_per_s"] / b["requests_per_s"] for a, b in pairs
                  if a.get("requests_per_s") and b.get("requests_per_s")]  # fmt: skip
        return round(float(np.median(ratios)), 3) if ratios else None

    ml_json = rate("mlserver_json")
    out: dict[str, Any] = {
        "digits_json_vs_mlserver_json": ratio(rate("digits_json"), ml_json),
        "digits_binary_vs_mlserver_json": ratio(rate("digits_binary"), ml_json),
        "digits_binary_vs_mlserver_binary": ratio(rate("digits_binary"), rate("mlserver_binary")),
        "grpc_http_on_vs_off": ratio(rate("grpc_http_on"), rate("grpc_http_off")),
        "target_vs_mlserver": TARGET_VS_MLSERVER,
        "per_round": {
            "digits_json_vs_mlserver_json": per_round("digits_json", "mlserver_json"),
            "digits_binary_vs_mlserver_json": per_round("digits_binary", "mlserver_json"),
            "grpc_http_on_vs_off": per_round("grpc_http_on", "grpc_http_off"),
        },
    }
    json_ratio = out["digits_json_vs_mlserver_json"]
    out["json_met"] = None if json_ratio is None else json_ratio >= TARGET_VS_MLSERVER
    return out


RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import multiprocessing
    import os
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    import loadgen  # bench/mlserver/loadgen.py
    import serve  # bench/serve.py: the model, the machine facts and the gRPC runner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per point (4)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (5)")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per server (1)")
    parser.add_argument("--client", choices=("native", "python"), default="native")
    parser.add_argument("--out", default=str(RESULTS / "rest.json"), help="JSON file to write")
    args = parser.parse_args(argv)
    blas_env = {name: str(args.blas_threads) for name in serve._BLAS_VARS}
    os.environ.update(blas_env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rest-", dir=RESULTS))
    registry, params = serve._model(None, work)
    weights = serve._safetensors(params, work / "weights.safetensors")
    native, client_note = serve._load_generator(args.client)
    report: dict[str, Any] = {
        "benchmark": "rest",
        "seconds_per_point": args.duration,
        "machine": {**serve._machine(args.blas_threads), "grpc_load_generator": client_note},
    }
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as client:
        client.submit(loadgen.warm_up).result()
        run = serve._Runner(client, args.duration, native)
        report["rest"] = measure(
            run, registry, weights, blas_env, work, duration=args.duration, rounds=args.rounds
        )
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

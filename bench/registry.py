"""Registry speed on a local directory and on S3 (a real SeaweedFS on loopback), as JSON.

    python bench/registry.py [--rounds 20] [--promotions 5] [--replicas 3] [--poll 0.5]

Both backends run in the same process, one after the other, on the same 784-128-40-10 model
(float32, 0.43 MB of safetensors): publish (median ms), verified load (median ms, every sha256
checked; S3 also with a warm read-through cache), an unchanged poll (median ms and the HTTP
requests it sends, counted with botocore's event hooks), and promote-to-all-replicas-serving:
``--replicas`` `digits serve` processes poll the registry every ``--poll`` seconds; each of
``--promotions`` promotions is timed from the promote call's return until every replica's
GetModel reports the new version (median, also in poll intervals). BLAS is pinned to 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from threadpoolctl import threadpool_info

from registry import Registry
from registry.s3 import S3Storage
from tests.helpers.replicas import start_replicas, stop_replicas
from tests.helpers.seaweedfs import BUCKET, SeaweedS3

SHAPES = {"W1": (128, 784), "b1": (128, 1), "W2": (40, 128), "b2": (40, 1), "W3": (10, 40),
          "b3": (10, 1)}  # fmt: skip


def _params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        k: (rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32) for k, s in SHAPES.items()
    }


def _median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def _requests_per_poll(registry: Registry, rounds: int) -> float | None:
    """HTTP requests an unchanged poll sends (None for a directory: no requests at all)."""
    storage = registry.storage
    if not isinstance(storage, S3Storage):
        return None
    sent = [0]
    events = storage._s3._client.meta.events
    events.register("before-send.s3.*", lambda **_: sent.__setitem__(0, sent[0] + 1))
    for _ in range(rounds):
        registry.state_token("digits")
    return sent[0] / rounds


def _promotion_times(
    registry: Registry, root: str, work: Path, env: dict[str, str], args: argparse.Namespace
) -> list[float]:
    """Seconds from each promotion until every replica serves it."""
    replicas = start_replicas(args.replicas, root, work, env, args.poll)
    try:
        times = []
        for round_ in range(args.promotions):
            version = registry.publish("digits", _params(1000 + round_), {}).version
            time.sleep(args.poll)  # let every replica see the publish first: time the alias only
            registry.promote("digits", version)
            start = time.perf_counter()
            pending = list(replicas)
            while pending:
                pending = [r for r in pending if r.served_version() != version]
            times.append(time.perf_counter() - start)
        return times
    finally:
        stop_replicas(replicas)


def _backend(
    root: str, work: Path, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    os.environ.update(env)
    registry = Registry(root)
    params = _params(0)
    result: dict[str, Any] = {"root": root}
    result["publish_ms"] = _median_ms(lambda: registry.publish("digits", params, {}), args.rounds)
    registry.promote("digits", 1)
    result["verified_load_ms"] = _median_ms(lambda: registry.load("digits"), args.rounds)
    if root.startswith("s3://"):
        cached = Registry(root, cache_dir=work / "bench-cache")
        cached.load("digits")  # fill the cache
        result["verified_load_cached_ms"] = _median_ms(lambda: cached.load("digits"), args.rounds)
    registry.state_token("digits")
    result["unchanged_poll_ms"] = _median_ms(lambda: registry.state_token("digits"), args.rounds)
    result["unchanged_poll_requests"] = _requests_per_poll(registry, args.rounds)
    times = _promotion_times(registry, root, work, env, args)
    result["promote_to_all_serving_s"] = [round(t, 3) for t in times]
    result["promote_to_all_serving_median_s"] = round(statistics.median(times), 3)
    result["promote_to_all_serving_median_polls"] = round(statistics.median(times) / args.poll, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="repetitions per median (20)")
    parser.add_argument("--promotions", type=int, default=5, help="timed promotions (5)")
    parser.add_argument("--replicas", type=int, default=3, help="serving processes (3)")
    parser.add_argument("--poll", type=float, default=0.5, help="replicas' poll interval s (0.5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "local").mkdir()
        local = _backend(str(work / "local" / "models"), work / "local", {}, args)
        server = SeaweedS3(work / "seaweedfs")
        started = time.perf_counter()
        server.start()
        ready_s = time.perf_counter() - started
        try:
            (work / "s3").mkdir()
            s3 = _backend(f"s3://{BUCKET}/bench", work / "s3", server.env(), args)
        finally:
            server.stop()
    result = {
        "benchmark": "registry",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "blas_threads": [pool.get("num_threads") for pool in threadpool_info()],
        "settings": vars(args),
        "seaweedfs_ready_s": round(ready_s, 2),
        "local": local,
        "s3": s3,
        "targets": {
            "unchanged_poll_one_request": s3["unchanged_poll_requests"] == 1,
            "unchanged_poll_le_5_ms": s3["unchanged_poll_ms"] <= 5,
            "all_replicas_within_2_polls": all(
                t <= 2 * args.poll for t in s3["promote_to_all_serving_s"]
            ),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

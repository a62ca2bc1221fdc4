"""Registry under concurrency: parallel publishers (threads, processes), a publisher killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small weights so that eight interpreters start and publish in a few seconds.
_PARAMS_CODE = """
import numpy as np
def small_params(seed):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((64, 32)).astype(np.float32).T, "b1": np.full((32, 1), seed)}
"""

PUBLISHER = (
    _PARAMS_CODE
    + """
import sys
from registry import Registry
root, seed = sys.argv[1], int(sys.argv[2])
registry = Registry(root)
print("ready", flush=True)
sys.stdin.readline()  # start line: every process publishes at the same moment
print(registry.publish("digits", small_params(seed), {"seed": seed}).version, flush=True)
"""
)

CRASHING_PUBLISHER = (
    _PARAMS_CODE
    + """
import sys, time
from registry import Registry
def pause(staging):
    print(staging, flush=True)
    time.sleep(120)  # the test kills us here, between staging and rename
Registry(sys.argv[1]).publish("digits", small_params(99), {"seed": 99}, _before_commit=pause)
"""
)

_namespace: dict[str, Any] = {}
exec(_PARAMS_CODE, _namespace)  # the parent recomputes what each child published
small_params: Callable[[int], dict[str, np.ndarray]] = _namespace["small_params"]


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_published_by_seed(registry: Registry, versions_by_seed: dict[int, int]) -> None:
    for seed, version in versions_by_seed.items():
        loaded = registry.load("digits", version)
        assert loaded.manifest["seed"] == seed
        for key, array in small_params(seed).items():
            assert np.array_equal(loaded.params[key], array), (seed, key)


@pytest.mark.integration
def test_eight_processes_publish_eight_distinct_complete_versions(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    processes = [_python(PUBLISHER, str(registry.root), str(seed)) for seed in range(8)]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    versions_by_seed = {seed: int(out) for seed, (out, _err) in enumerate(outputs)}
    assert sorted(versions_by_seed.values()) == list(range(1, 9))
    assert [v.version for v in registry.list_versions("digits")] == list(range(1, 9))
    assert_published_by_seed(registry, versions_by_seed)
    assert not list((registry.root / "digits").glob(".staging-*"))


def test_threads_publish_distinct_versions_while_gc_runs(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.publish("digits", small_params(100), {"seed": 100})
    registry.set_alias("digits", "production", 1)
    barrier = threading.Barrier(9)
    versions_by_seed: dict[int, int] = {}
    deleted: list[int] = []

    def publish(seed: int) -> None:
        barrier.wait()
        version = registry.publish("digits", small_params(seed), {"seed": seed})
        versions_by_seed[seed] = version.version

    def collect() -> None:
        barrier.wait()
        for _ in range(5):
            deleted.extend(registry.gc("digits", keep=3))

    threads = [threading.Thread(target=publish, args=(seed,)) for seed in range(8)]
    threads.append(threading.Thread(target=collect))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(versions_by_seed.values()) == list(range(2, 10))
    surviving = {v.version for v in registry.list_versions("digits")}
    assert surviving | set(deleted) == set(range(1, 10)) and not surviving & set(deleted)
    assert 1 in surviving  # aliased: never collected
    assert_published_by_seed(
        registry, {s: v for s, v in versions_by_seed.items() if v in surviving}
    )


@pytest.mark.integration
def test_publisher_killed_before_commit_leaves_a_valid_registry(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.publish("digits", small_params(1), {"seed": 1})
    token = registry.state_token("digits")

    process = _python(CRASHING_PUBLISHER, str(registry.root))
    try:
        assert process.stdout is not None
        staging = Path(process.stdout.readline().strip())
        assert staging.name.startswith(".staging-"), process.stderr.read() if process.stderr else ""
        # Fully staged (weights, manifest, checksum) but not yet visible as a version.
        assert sorted(p.name for p in staging.iterdir()) == [
            "manifest.json",
            "manifest.sha256",
            "weights.safetensors",
        ]
        assert [v.version for v in registry.list_versions("digits")] == [1]
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        process.kill()
        process.communicate()

    assert registry.list_models() == ["digits"]
    assert [v.version for v in registry.list_versions("digits")] == [1]
    assert registry.state_token("digits") == token
    assert registry.load("digits").version == 1
    # The dead publisher's lock is gone with it: the next publish neither hangs nor collides.
    assert registry.publish("digits", small_params(2), {"seed": 2}).version == 2
    assert_published_by_seed(registry, {1: 1, 2: 2})
    assert staging.exists()
    assert registry.gc("digits", keep=5) == []
    assert not staging.exists()

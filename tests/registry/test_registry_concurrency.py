"""Registry under concurrency: parallel publishers (threads, processes), a publisher killed."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from registry import Registry
from tests.helpers.publishers import (
    CRASHING_PUBLISHER,
    PUBLISHER,
    assert_published_by_seed,
    run_python,
    small_params,
)


@pytest.mark.integration
def test_eight_processes_publish_eight_distinct_complete_versions(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    processes = [run_python(PUBLISHER, str(registry.root), str(seed)) for seed in range(8)]
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

    process = run_python(CRASHING_PUBLISHER, str(registry.root))
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

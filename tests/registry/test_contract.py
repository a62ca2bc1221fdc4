"""The registry contract, held by both backends (a directory and S3 on a real server).

Round trip, concurrent publishers and promoters in separate processes, a publisher killed
between upload and commit, flipped bytes, gc's protections and hostile names.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from registry import (
    ConflictError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    Registry,
)
from registry import s3 as registry_s3
from tests.helpers.publishers import (
    CRASHING_PUBLISHER,
    PUBLISHER,
    assert_published_by_seed,
    run_python,
    small_params,
)
from tests.helpers.registry_backends import (
    BACKENDS,
    delete_behind_the_registrys_back,
    flip_stored_byte,
    registry_root,
    stored_version_count,
)
from tests.helpers.registry_data import toy_params

PROMOTER = """
import sys
from registry import ConflictError, Registry
registry, target, expected = Registry(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print("ready", flush=True)
sys.stdin.readline()  # start line: every process promotes at the same moment
try:
    if expected == "-":
        registry.promote("digits", target)
    else:
        registry.promote("digits", target, expected=int(expected))
    print("moved", flush=True)
except ConflictError:
    print("conflict", flush=True)
"""


@pytest.fixture(params=BACKENDS)
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return registry_root(request.param, request, tmp_path)


@pytest.fixture
def registry(root: str) -> Registry:
    return Registry(root)


def _run_together(processes: list[subprocess.Popen[str]]) -> list[str]:
    """Wait until each child is ready, release them at once, return each one's last line."""
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(out.strip().splitlines()[-1])
    return results


def test_round_trip_is_bit_exact(registry: Registry) -> None:
    params = {**toy_params(3), "counts": np.arange(7, dtype=np.int64), "flag": np.array([True])}
    published = registry.publish("digits", params, {"note": "x"}, {"notes.txt": b"hello\n"})
    loaded = registry.load("digits", published.version)
    assert set(loaded.params) == set(params)
    for key, array in params.items():
        assert loaded.params[key].dtype == array.dtype and loaded.params[key].shape == array.shape
        assert loaded.params[key].tobytes() == np.ascontiguousarray(array).tobytes(), key
    assert loaded.manifest == published.manifest == registry.get("digits", 1).manifest
    assert loaded.manifest["note"] == "x" and "notes.txt" in loaded.manifest["files"]
    assert registry.list_models() == ["digits"]


@pytest.mark.integration
def test_eight_publishing_processes_get_eight_distinct_complete_versions(
    registry: Registry, root: str
) -> None:
    processes = [run_python(PUBLISHER, root, str(seed)) for seed in range(8)]
    versions = [int(line) for line in _run_together(processes)]
    assert sorted(versions) == list(range(1, 9))
    assert [v.version for v in registry.list_versions("digits")] == list(range(1, 9))
    assert_published_by_seed(registry, dict(enumerate(versions)))


@pytest.mark.integration
def test_publisher_killed_between_upload_and_commit_leaves_no_version(
    registry: Registry, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.publish("digits", small_params(1), {"seed": 1})
    process = run_python(CRASHING_PUBLISHER, root)
    assert process.stdout is not None
    staged = process.stdout.readline().strip()  # every file is stored, the commit is next
    assert staged
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    reader = Registry(root)
    assert [v.version for v in reader.list_versions("digits")] == [1]
    assert reader.resolve("digits", "latest") == 1
    assert stored_version_count(reader, "digits") == 2  # the dead publisher's files, unseen
    # gc removes them once their owner is gone (S3: once older than the grace period).
    monkeypatch.setattr(registry_s3, "ORPHAN_GRACE_S", 0.0)
    assert reader.gc("digits", keep=5) == []
    assert stored_version_count(reader, "digits") == 1
    nxt = reader.publish("digits", small_params(2), {"seed": 2})
    assert nxt.version == 2
    assert_published_by_seed(reader, {1: 1, 2: 2})


@pytest.mark.parametrize(
    ("file", "offset"),
    [
        ("weights.safetensors", 20),  # inside the safetensors header
        ("weights.safetensors", -1),  # last byte of the last tensor
        ("notes.txt", 0),
        ("manifest.json", 40),
    ],
)
def test_a_flipped_byte_in_any_object_is_refused(
    registry: Registry, file: str, offset: int
) -> None:
    registry.publish("digits", toy_params(1), {}, {"notes.txt": b"notes\n"})
    flip_stored_byte(registry, "digits", 1, file, offset)
    with pytest.raises(IntegrityError):
        registry.load("digits", 1)


def test_promote_and_rollback_refuse_a_corrupt_target(registry: Registry) -> None:
    for seed in range(3):
        registry.publish("digits", toy_params(seed), {})
    registry.promote("digits", 1)
    registry.promote("digits", 3)
    flip_stored_byte(registry, "digits", 2, "weights.safetensors", -1)
    with pytest.raises(IntegrityError, match=r"refusing to promote 'production' .* version 2"):
        registry.promote("digits", 2)
    with pytest.raises(IntegrityError, match="version 2"):
        registry.promote("digits", 2, "canary", expected=None)
    assert registry.aliases("digits") == {"production": 3}
    flip_stored_byte(registry, "digits", 1, "weights.safetensors", -1)
    with pytest.raises(IntegrityError, match=r"refusing to roll back 'production' .* version 1"):
        registry.rollback("digits")
    assert registry.aliases("digits") == {"production": 3}
    registry.promote("digits", 2, "broken", verify=False)  # asked for explicitly
    assert registry.aliases("digits")["broken"] == 2


@pytest.mark.integration
def test_eight_concurrent_promoters_lose_no_update(registry: Registry, root: str) -> None:
    for seed in range(9):
        registry.publish("digits", small_params(seed), {"seed": seed})
    registry.promote("digits", 1)
    results = _run_together([run_python(PROMOTER, root, str(v), "-") for v in range(2, 10)])
    assert results == ["moved"] * 8
    current = registry.resolve("digits", "production")
    history = registry.alias_history("digits", "production")
    # Every promotion happened exactly once: the old targets plus the current one are 1..9.
    assert sorted([*history, current]) == list(range(1, 10))
    assert history[0] == 1


@pytest.mark.integration
def test_compare_and_set_promotions_let_exactly_one_win(registry: Registry, root: str) -> None:
    for seed in range(9):
        registry.publish("digits", small_params(seed), {"seed": seed})
    registry.promote("digits", 1)
    results = _run_together([run_python(PROMOTER, root, str(v), "1") for v in range(2, 10)])
    assert sorted(results) == ["conflict"] * 7 + ["moved"]
    winner = 2 + results.index("moved")
    assert registry.resolve("digits", "production") == winner
    assert registry.alias_history("digits", "production") == [1]


def test_promote_expected_checks_the_current_target(registry: Registry) -> None:
    for seed in range(3):
        registry.publish("digits", toy_params(seed), {})
    assert registry.promote("digits", 1, expected=None) is None  # create-only
    with pytest.raises(ConflictError, match="points to 1, not the expected None"):
        registry.promote("digits", 2, expected=None)
    with pytest.raises(ConflictError):
        registry.promote("digits", 2, expected=3)
    assert registry.resolve("digits", "production") == 1
    assert registry.promote("digits", 2, expected=1) == 1
    assert registry.promote("digits", 3, "canary", expected=None) is None
    assert registry.aliases("digits") == {"canary": 3, "production": 2}
    assert registry.rollback("digits") == 1 and registry.alias_history("digits", "production") == []


def test_gc_deletes_for_real_but_keeps_alias_and_rollback_targets(registry: Registry) -> None:
    for seed in range(6):
        registry.publish("digits", toy_params(seed), {})
    registry.promote("digits", 2)
    registry.promote("digits", 3)  # production = 3, rolls back to 2
    registry.promote("digits", 4, "canary")
    assert registry.gc("digits", keep=1) == [1, 5]
    assert [v.version for v in registry.list_versions("digits")] == [2, 3, 4, 6]
    assert stored_version_count(registry, "digits") == 4  # the bytes are gone, not just hidden
    for version in (2, 3, 4, 6):
        registry.load("digits", version)
    with pytest.raises(NotFoundError):
        registry.load("digits", 1)
    assert registry.rollback("digits") == 2
    assert registry.publish("digits", toy_params(9), {}).version == 7  # numbers never reused


def test_a_version_deleted_behind_its_back_leaves_a_dangling_alias_that_recovers(
    registry: Registry,
) -> None:
    for seed in range(4):
        registry.publish("digits", toy_params(seed), {})
    for version in (1, 2, 3):
        registry.promote("digits", version)
    delete_behind_the_registrys_back(registry, "digits", 3)
    assert registry.dangling_aliases("digits") == {"production": 3}
    with pytest.raises(NotFoundError, match="dangling alias"):
        registry.resolve("digits")
    assert registry.gc("digits", keep=1) == [1]  # keeps 2, where production rolls back to
    assert registry.rollback("digits") == 2 and registry.dangling_aliases("digits") == {}
    delete_behind_the_registrys_back(registry, "digits", 2)  # its rollback target 1 is gone too
    with pytest.raises(NotFoundError, match="promote VERSION --alias production"):
        registry.rollback("digits")
    assert registry.promote("digits", 4) == 2
    assert registry.dangling_aliases("digits") == {} and registry.resolve("digits") == 4


@pytest.mark.parametrize("name", ["../x", "a/b", "", "Digits", ".hidden", "x" * 65, "a\x00b"])
def test_hostile_model_names_are_refused_before_any_write(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidNameError):
        registry.publish(name, toy_params(), {})
    with pytest.raises(InvalidNameError):
        registry.load(name)
    assert registry.list_models() == []


@pytest.mark.parametrize("alias", ["../../x", "latest", "12", "a/b", ".x"])
def test_hostile_aliases_and_file_names_are_refused(registry: Registry, alias: str) -> None:
    registry.publish("digits", toy_params(), {})
    with pytest.raises(InvalidNameError):
        registry.promote("digits", 1, alias)
    with pytest.raises(InvalidNameError):
        registry.publish("digits", toy_params(), {}, {"../evil": b"x"})
    assert registry.aliases("digits") == {} and registry.resolve("digits", "latest") == 1


@pytest.mark.parametrize(
    "url", ["s3://Bad_Bucket/x", "s3://ok-bucket/../x", "s3://ok-bucket/a//.b", "s3://b"]
)
def test_hostile_registry_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid registry URL"):
        Registry(url)

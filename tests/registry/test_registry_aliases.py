"""Registry references, aliases (promote, rollback), gc, listing and the hot-reload state token."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from registry import NotFoundError, Registry
from registry import files as registry_files
from tests.helpers.registry_data import toy_params


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


def publish_many(registry: Registry, count: int, name: str = "digits") -> list[int]:
    return [
        registry.publish(name, toy_params(seed), {"seed": seed}).version for seed in range(count)
    ]


def test_references_resolve_to_version_numbers(registry: Registry) -> None:
    publish_many(registry, 3)
    assert registry.resolve("digits") == 3  # no production alias yet: latest
    registry.set_alias("digits", "production", 1)
    registry.set_alias("digits", "staging", "latest")
    assert registry.resolve("digits") == 1
    assert registry.resolve("digits", None) == 1
    assert registry.resolve("digits", "latest") == 3
    assert registry.resolve("digits", "staging") == 3
    assert registry.resolve("digits", 2) == registry.resolve("digits", "2") == 2
    assert registry.load("digits").version == 1
    assert registry.load("digits").manifest["seed"] == 0
    assert registry.aliases("digits") == {"production": 1, "staging": 3}


def test_promote_and_rollback_step_back_through_history(registry: Registry) -> None:
    publish_many(registry, 3)
    assert registry.set_alias("digits", "production", 1) is None
    assert registry.set_alias("digits", "production", 2) == 1
    assert registry.set_alias("digits", "production", 2) == 2  # no-op: history unchanged
    assert registry.set_alias("digits", "production", 3) == 2
    assert registry.alias_history("digits", "production") == [1, 2]

    assert registry.rollback("digits", "production") == 2
    assert registry.load("digits").version == 2
    assert registry.rollback("digits") == 1
    with pytest.raises(NotFoundError, match="no previous version"):
        registry.rollback("digits", "production")
    assert registry.resolve("digits") == 1
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.rollback("digits", "staging")

    record = json.loads((registry.root / "digits/aliases/production.json").read_text())
    assert (record["alias"], record["version"], record["history"]) == ("production", 1, [])


def test_alias_to_unknown_version_is_refused(registry: Registry) -> None:
    publish_many(registry, 1)
    with pytest.raises(NotFoundError, match="no version 4"):
        registry.set_alias("digits", "production", 4)
    with pytest.raises(NotFoundError, match="model 'other' not found"):
        registry.set_alias("other", "production", 1)
    assert registry.aliases("digits") == {}


def test_concurrent_promotions_lose_no_history(registry: Registry) -> None:
    publish_many(registry, 8)
    barrier = threading.Barrier(8)

    def promote(version: int) -> None:
        barrier.wait()
        registry.set_alias("digits", "production", version)

    threads = [threading.Thread(target=promote, args=(v,)) for v in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every promotion is either the current target or in the history: none was overwritten.
    current = registry.resolve("digits", "production")
    assert sorted([*registry.alias_history("digits", "production"), current]) == list(range(1, 9))


def test_gc_keeps_newest_aliased_and_rollback_targets(registry: Registry) -> None:
    publish_many(registry, 7)
    registry.set_alias("digits", "production", 2)
    registry.set_alias("digits", "production", 3)  # 2 stays as the rollback target
    registry.set_alias("digits", "staging", 1)

    assert registry.gc("digits", keep=2) == [4, 5]
    assert [v.version for v in registry.list_versions("digits")] == [1, 2, 3, 6, 7]
    assert registry.rollback("digits") == 2
    assert registry.load("digits").version == 2
    assert registry.gc("digits", keep=2) == [3]  # no longer aliased nor a rollback target
    # Numbers are never reused, even though 3, 4 and 5 are free again.
    assert registry.publish("digits", toy_params(), {}).version == 8


def test_gc_never_deletes_the_only_version_and_validates_keep(registry: Registry) -> None:
    publish_many(registry, 1)
    assert registry.gc("digits", keep=1) == []
    for keep in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="keep must be an integer >= 1"):
            registry.gc("digits", keep)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        registry.gc("other", keep=1)
    assert registry.resolve("digits") == 1


def test_numbers_continue_after_the_newest_version_is_removed(registry: Registry) -> None:
    publish_many(registry, 3)
    registry_files.remove_tree(registry.root / "digits" / "3")  # e.g. deleted by hand
    assert registry.publish("digits", toy_params(), {}).version == 4


def test_gc_removes_abandoned_staging_but_not_a_live_one(registry: Registry) -> None:
    publish_many(registry, 1)
    model_dir = registry.root / "digits"
    abandoned = model_dir / ".staging-dead"
    abandoned.mkdir()
    (abandoned / "weights.safetensors").write_bytes(b"partial")
    live = model_dir / ".staging-live"
    live.mkdir()
    fd = registry_files.lock_directory(live)  # what a publisher in progress holds
    try:
        registry.gc("digits", keep=1)
        assert not abandoned.exists() and live.exists()
    finally:
        os.close(fd)
    registry.gc("digits", keep=1)
    assert not live.exists()
    assert sorted(p.name for p in model_dir.iterdir()) == [".last_version", ".lock", "1"]


def test_list_models_ignores_non_models(registry: Registry) -> None:
    assert registry.list_models() == []
    publish_many(registry, 1, name="zeta")
    publish_many(registry, 2, name="digits")
    (registry.root / "README.txt").write_text("not a model")
    (registry.root / ".cache").mkdir()
    (registry.root / "empty").mkdir()
    (registry.root / "crashed" / ".staging-x").mkdir(parents=True)
    assert registry.list_models() == ["digits", "zeta"]
    listed = registry.list_versions("digits")
    assert [(v.name, v.version, v.manifest["seed"]) for v in listed] == [
        ("digits", 1, 0),
        ("digits", 2, 1),
    ]


def test_state_token_changes_with_publish_and_alias_moves_only(registry: Registry) -> None:
    tokens = [registry.state_token("digits")]  # a missing model has a token too
    publish_many(registry, 2)
    tokens.append(registry.state_token("digits"))
    assert registry.state_token("digits") == tokens[-1]  # nothing changed
    registry.set_alias("digits", "production", 1)
    tokens.append(registry.state_token("digits"))
    registry.set_alias("digits", "production", 2)
    tokens.append(registry.state_token("digits"))
    registry.rollback("digits")
    tokens.append(registry.state_token("digits"))
    registry.publish("digits", toy_params(), {})
    tokens.append(registry.state_token("digits"))
    assert len(set(tokens[:4])) == 4
    assert tokens[-2] == tokens[2]  # after rollback production is 1 again, as before
    assert tokens[-1] != tokens[-2]


def test_state_token_does_not_read_weights(registry: Registry) -> None:
    version = registry.publish("digits", toy_params(), {})
    weights = version.path / "weights.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(np.zeros(4, np.uint8).tobytes())  # corrupt: load would refuse it
    assert registry.state_token("digits") == "latest=1"

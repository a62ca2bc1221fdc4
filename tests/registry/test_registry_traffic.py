"""Alias records with canary, shadow and an event log: changes, history and rollback to a time."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry import NotFoundError, Registry, traffic
from tests.helpers.registry_backends import BACKENDS, registry_root
from tests.helpers.registry_data import toy_params


def _published(root: str | Path) -> Registry:
    reg = Registry(root)
    for seed in range(3):
        reg.publish("digits", toy_params(seed), {"seed": seed})
    return reg


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    """Three versions, on each backend: the rollout state rides in the alias record on both."""
    return _published(registry_root(request.param, request, tmp_path))


def _now() -> datetime:
    time.sleep(0.002)  # events carry microseconds; keep "now" strictly between two of them
    moment = datetime.now(UTC)
    time.sleep(0.002)
    return moment


def test_every_change_is_logged_with_time_actor_and_reason(registry: Registry) -> None:
    registry.set_alias("digits", "production", 1, reason="first release")
    traffic.set_canary(registry, "digits", 2, 10, reason="try 2", actor="flow-run/abc")
    traffic.set_canary(registry, "digits", 2, 50)
    traffic.set_shadow(registry, "digits", 3, 25)
    traffic.promote_canary(registry, "digits", reason="healthy")
    traffic.stop_shadow(registry, "digits")
    registry.rollback("digits", "production", reason="oops")
    events = registry.alias_record("digits", "production")["events"]
    assert [(e["event"], e["version"]) for e in events] == [
        ("promote", 1), ("canary-start", 1), ("canary-step", 1), ("shadow-start", 1),
        ("canary-promote", 2), ("shadow-stop", 2), ("rollback", 1),
    ]  # fmt: skip
    assert events[0]["reason"] == "first release" and events[1]["actor"] == "flow-run/abc"
    assert events[2]["canary"] == {"version": 2, "percent": 50.0}
    assert "@" in events[0]["actor"]  # user@host by default
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)


def test_canary_and_shadow_state_is_in_the_alias_record(registry: Registry) -> None:
    registry.set_alias("digits", "production", 1)
    state = traffic.set_canary(registry, "digits", "latest", 30)
    assert state.canary == traffic.Split(3, 30.0) and state.version == 1
    token = registry.state_token("digits")
    traffic.set_shadow(registry, "digits", 2, 100)
    assert registry.state_token("digits") != token  # servers see it on their next poll
    state = traffic.abort_canary(registry, "digits")
    assert state.canary is None and state.shadow == traffic.Split(2, 100.0)
    assert registry.resolve("digits") == 1  # production never moved
    with pytest.raises(NotFoundError, match="no canary"):
        traffic.abort_canary(registry, "digits")
    with pytest.raises(ValueError, match="percent"):
        traffic.set_canary(registry, "digits", 2, 0)
    with pytest.raises(ValueError, match="already is"):
        traffic.set_canary(registry, "digits", 1, 10)
    with pytest.raises(NotFoundError, match="promote a version"):
        traffic.set_canary(registry, "digits", 2, 10, alias="staging")


def test_gc_keeps_canary_and_shadow_versions(registry: Registry) -> None:
    first = registry.list_versions("digits")[0].version  # an S3 test bucket may hold others
    for seed in range(3, 6):
        registry.publish("digits", toy_params(seed), {"seed": seed})
    registry.set_alias("digits", "production", first + 5)
    traffic.set_canary(registry, "digits", first, 10)
    traffic.set_shadow(registry, "digits", first + 1, 10)
    assert registry.gc("digits", keep=1) == [first + 2, first + 3, first + 4]


def test_old_alias_files_without_the_new_fields_still_load(tmp_path: Path) -> None:
    registry = _published(tmp_path / "models")
    path = Path(registry.root) / "digits" / "aliases" / "production.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"alias": "production", "version": 2, "history": [1]}))
    assert registry.resolve("digits") == 2
    assert registry.rollback("digits") == 1  # and can be changed, gaining an event log
    record = registry.alias_record("digits", "production")
    assert record["version"] == 1 and [e["event"] for e in record["events"]] == ["rollback"]


def test_rollback_to_a_time_before_between_and_after_changes(registry: Registry) -> None:
    before = _now()
    registry.set_alias("digits", "production", 1)
    after_one = _now()
    registry.set_alias("digits", "production", 2)
    after_two = _now()
    registry.set_alias("digits", "production", 3)
    after_three = _now()
    with pytest.raises(NotFoundError, match="held no recorded version"):
        traffic.rollback_to(registry, "digits", before)
    assert registry.resolve("digits") == 3  # a refused rollback changes nothing
    assert traffic.rollback_to(registry, "digits", after_three) == (3, 3)
    assert traffic.rollback_to(registry, "digits", after_one) == (3, 1)
    assert registry.resolve("digits") == 1
    assert traffic.rollback_to(registry, "digits", after_two) == (1, 2)
    assert registry.resolve("digits") == 2
    # The rollbacks are history too: right after the first one, production was 1.
    events = registry.alias_record("digits", "production")["events"]
    first_rollback = datetime.fromisoformat(events[4]["time"]) + timedelta(microseconds=1)
    assert traffic.rollback_to(registry, "digits", first_rollback) == (2, 1)
    assert events[4]["reason"] == f"rollback to {after_one.isoformat()}"


def test_rollback_to_aborts_a_running_canary(registry: Registry) -> None:
    registry.set_alias("digits", "production", 1)
    moment = _now()
    traffic.set_canary(registry, "digits", 2, 50)
    assert traffic.rollback_to(registry, "digits", moment) == (1, 1)
    assert registry.alias_record("digits", "production").get("canary") is None


def test_parse_time_accepts_iso_8601_and_names_bad_input() -> None:
    assert traffic.parse_time("2026-11-29T03:00:00Z") == datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert traffic.parse_time("2026-11-29T04:00+01:00") == datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert traffic.parse_time("2026-11-29 03:00") == datetime(2026, 11, 29, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO 8601 time: 'last tuesday'"):
        traffic.parse_time("last tuesday")

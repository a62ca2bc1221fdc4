"""Traffic changes of an alias: canary, shadow, and rollback to a point in time.

Each public function is one `Registry.update_alias` call (so one read-modify-write of the alias
record, see registry/aliases.py) that also appends an event to the alias's log. Servers learn the
new state on their next registry poll. Terms: a *canary* version answers ``percent`` % of the
requests that pin no version; a *shadow* version also runs on ``percent`` % of requests after
they are answered, and only its agreement and latency are measured.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from registry.aliases import Record, event
from registry.errors import NotFoundError

if TYPE_CHECKING:
    from registry.registry import Registry

__all__ = [
    "AliasState",
    "Split",
    "abort_canary",
    "default_actor",
    "parse_time",
    "promote_canary",
    "rollback_to",
    "set_canary",
    "set_shadow",
    "stop_shadow",
    "version_at",
]


@dataclass(frozen=True)
class Split:
    """A version and the share of requests (0 < percent <= 100) it gets."""

    version: int
    percent: float


@dataclass(frozen=True)
class AliasState:
    """What an alias serves: its version, and the canary and shadow when set."""

    version: int
    canary: Split | None
    shadow: Split | None

    @classmethod
    def of(cls, record: Record) -> AliasState:
        def split(key: str) -> Split | None:
            state = record.get(key)
            return None if not state else Split(int(state["version"]), float(state["percent"]))

        return cls(int(record["version"]), split("canary"), split("shadow"))


def default_actor() -> str:
    """``user@host`` of this process (flows pass their run's name instead)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers running as a bare uid)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _check_percent(percent: float) -> float:
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return float(percent)


def _existing(record: Record | None, model: str, alias: str) -> Record:
    if record is None:
        raise NotFoundError(
            f"model {model!r} has no alias {alias!r}: promote a version to it before a canary "
            "or shadow (digits models promote VERSION)"
        )
    return record


def _append(record: Record, kind: str, actor: str, reason: str, **extra: Any) -> Record:
    entry = event(kind, int(record["version"]), actor, reason, **extra)
    record["events"] = [*record.get("events", []), entry]
    return record


def set_canary(
    registry: Registry, name: str, version: int | str, percent: float, *,
    alias: str = "production", actor: str | None = None, reason: str = "",
) -> AliasState:  # fmt: skip
    """Start a canary of ``version`` at ``percent`` %, or move the running one's weight."""
    target = registry.resolve(name, version)
    percent = _check_percent(percent)

    def change(record: Record | None) -> Record:
        record = _existing(record, name, alias)
        if target == record["version"]:
            raise ValueError(f"version {target} already is {alias!r}: nothing to canary")
        running = record.get("canary")
        kind = "canary-step" if running and running["version"] == target else "canary-start"
        record["canary"] = {"version": target, "percent": percent}
        return _append(record, kind, actor or default_actor(), reason, canary=record["canary"])

    return AliasState.of(registry.update_alias(name, alias, change))


def _running_canary(record: Record | None, model: str, alias: str) -> tuple[Record, int]:
    record = _existing(record, model, alias)
    canary = record.get("canary")
    if not canary:
        raise NotFoundError(f"alias {alias!r} of model {model!r} has no canary")
    return record, int(canary["version"])


def abort_canary(
    registry: Registry, name: str, *, alias: str = "production", actor: str | None = None,
    reason: str = "",
) -> AliasState:  # fmt: skip
    """Remove the canary: all traffic goes back to the alias's version, which never changed."""

    def change(record: Record | None) -> Record:
        record, canary = _running_canary(record, name, alias)
        record.pop("canary")
        return _append(
            record, "canary-abort", actor or default_actor(), reason, canary_version=canary
        )

    return AliasState.of(registry.update_alias(name, alias, change))


def promote_canary(
    registry: Registry, name: str, *, alias: str = "production", actor: str | None = None,
    reason: str = "",
) -> AliasState:  # fmt: skip
    """Point the alias at the canary's version (it gets all traffic) and end the canary."""

    def change(record: Record | None) -> Record:
        record, canary = _running_canary(record, name, alias)
        previous = int(record["version"])
        record["history"] = [*record["history"], previous]
        record["version"] = canary
        record.pop("canary")
        if (record.get("shadow") or {}).get("version") == canary:
            record.pop("shadow")  # nothing left to compare it with
        return _append(record, "canary-promote", actor or default_actor(), reason,
                       previous=previous)  # fmt: skip

    return AliasState.of(registry.update_alias(name, alias, change))


def set_shadow(
    registry: Registry, name: str, version: int | str, percent: float = 100.0, *,
    alias: str = "production", actor: str | None = None, reason: str = "",
) -> AliasState:  # fmt: skip
    """Run ``version`` in shadow on ``percent`` % of the alias's requests (answers unchanged)."""
    target = registry.resolve(name, version)
    percent = _check_percent(percent)

    def change(record: Record | None) -> Record:
        record = _existing(record, name, alias)
        record["shadow"] = {"version": target, "percent": percent}
        return _append(record, "shadow-start", actor or default_actor(), reason,
                       shadow=record["shadow"])  # fmt: skip

    return AliasState.of(registry.update_alias(name, alias, change))


def stop_shadow(
    registry: Registry, name: str, *, alias: str = "production", actor: str | None = None,
    reason: str = "",
) -> AliasState:  # fmt: skip
    """End the shadow (no-op, but logged, when there is none)."""

    def change(record: Record | None) -> Record:
        record = _existing(record, name, alias)
        shadow = record.pop("shadow", None)
        return _append(record, "shadow-stop", actor or default_actor(), reason,
                       shadow_version=shadow and shadow["version"])  # fmt: skip

    return AliasState.of(registry.update_alias(name, alias, change))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-11-29T03:00``, ``...Z``, ``...+01:00``); naive means UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-29T03:00:00Z)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def version_at(record: Record, when: datetime, *, model: str, alias: str) -> int:
    """The version ``alias`` pointed to at ``when`` (from its event log)."""
    held = None
    for entry in record.get("events", []):
        if parse_time(entry["time"]) > when:
            break
        held = entry.get("version", held)
    if held is None:
        first = record.get("events", [{}])[0].get("time") if record.get("events") else None
        since = f"its log starts at {first}" if first else "it has no logged changes"
        raise NotFoundError(
            f"alias {alias!r} of model {model!r} held no recorded version at "
            f"{when.isoformat()} ({since})"
        )
    return int(held)


def rollback_to(
    registry: Registry, name: str, when: datetime, *, alias: str = "production",
    actor: str | None = None, reason: str = "",
) -> tuple[int, int]:  # fmt: skip
    """Point ``alias`` back at the version it held at ``when``; return (previous, version).

    A canary is aborted too: the point of going back in time is a known state.
    """
    result: dict[str, int] = {}

    def change(record: Record | None) -> Record:
        if record is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r} to roll back")
        target = version_at(record, when, model=name, alias=alias)
        if not registry.has_version(name, target):
            raise NotFoundError(
                f"cannot roll back {alias!r} of model {name!r} to {when.isoformat()}: "
                f"version {target} was deleted"
            )
        previous = result["previous"] = int(record["version"])
        result["version"] = target
        if previous != target:
            record["history"] = [*record["history"], previous]
        record["version"] = target
        record.pop("canary", None)
        why = reason or f"rollback to {when.isoformat()}"
        return _append(record, "rollback", actor or default_actor(), why, previous=previous)

    registry.update_alias(name, alias, change)
    return result["previous"], result["version"]

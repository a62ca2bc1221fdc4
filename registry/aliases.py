"""Alias records: one small JSON document per alias, its target, previous targets and rollout.

The same bytes are stored by every backend (``<model>/aliases/<alias>.json``); what differs is
how a write is made conditional (a file lock locally, an ETag condition on object storage).

A record holds the alias's target ``version``, the stack of previous targets ``history`` (where
``rollback`` goes), and optionally the rollout state every replica reads on its poll: a
``canary`` ``{"version", "percent"}`` and a ``shadow`` ``{"version", "percent"}``, plus
``events``: the log of every change (``time`` UTC, ``event``, ``actor``, ``reason``, ``version``
after the change). Records written before these fields existed load as they are.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from registry.errors import IntegrityError, NotFoundError

ALIASES_DIR = "aliases"
# Enough to roll back many times; bounded so the record stays small.
MAX_HISTORY = 50
# The event log: ~200 bytes an event, so ~100 kB at most; older events fall off the front.
MAX_EVENTS = 500

Record = dict[str, Any]


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds (events are ordered by it)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def decode_alias(data: bytes, where: str) -> Record:
    """Parse an alias record ``{"version", "history", ...}`` (IntegrityError when malformed)."""
    try:
        record = json.loads(data)
    except ValueError as err:
        raise IntegrityError(f"{where}: not valid JSON ({err})") from err
    problem = record_problem(record)
    if problem:
        raise IntegrityError(f"{where}: not an alias record ({problem})")
    return record  # type: ignore[no-any-return]


def record_problem(record: Any) -> str | None:
    """Why ``record`` is not a valid alias record, or None."""
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("version"), int)
        or not isinstance(record.get("history"), list)
        or not all(isinstance(v, int) for v in record["history"])
    ):
        return "needs 'version' and 'history'"
    for key in ("canary", "shadow"):
        state = record.get(key)
        if state is not None and not (
            isinstance(state, dict)
            and isinstance(state.get("version"), int)
            and isinstance(state.get("percent"), int | float)
        ):
            return f"'{key}' needs 'version' and 'percent'"
    events = record.get("events", [])
    if not isinstance(events, list) or not all(
        isinstance(e, dict) and isinstance(e.get("time"), str) for e in events
    ):
        return "'events' must be a list of objects with a 'time'"
    return None


def encode_record(alias: str, record: Record) -> bytes:
    """The stored form of a whole record (history and events bounded, updated_at now)."""
    record = {
        **record,
        "alias": alias,
        "history": list(record.get("history", []))[-MAX_HISTORY:],
        "events": list(record.get("events", []))[-MAX_EVENTS:],
        "updated_at": utc_now(),
    }
    problem = record_problem(record)
    if problem:  # a bug in a change function must never reach the storage
        raise ValueError(f"refusing to write an invalid alias record: {problem}")
    return (json.dumps(record, indent=2) + "\n").encode()


def event(kind: str, version: int, actor: str, reason: str, **extra: Any) -> dict[str, Any]:
    """One log entry: what happened (``kind``), the alias's target after it, who and why."""
    return {"time": utc_now(), "event": kind, "version": version, "actor": actor,
            "reason": reason, **extra}  # fmt: skip


def moved(
    record: Record | None, target: int, history: list[int], kind: str, actor: str, reason: str
) -> Record:
    """``record`` pointing at ``target`` with ``history``, the move logged; a canary or shadow
    of the new target ends (it is the alias's version now), other rollout state stays."""
    previous = None if record is None else int(record["version"])
    new: Record = {**(record or {}), "version": target, "history": history}
    for key in ("canary", "shadow"):
        if (new.get(key) or {}).get("version") == target:
            new.pop(key)
    entry = event(kind, target, actor, reason, previous=previous)
    new["events"] = [*new.get("events", []), entry]
    return new


def pointed(record: Record | None, target: int) -> tuple[int, list[int]] | None:
    """Target and history after pointing at ``target``; None when it already points there."""
    previous = None if record is None else int(record["version"])
    if previous == target:
        return None  # no-op: keep the history free of repeats
    history = [] if record is None else [*record["history"], previous]
    return target, history


def rollback_target(record: dict[str, Any], existing: set[int]) -> int | None:
    """The newest entry of the alias's history that still exists, else None.

    Versions deleted by hand are skipped, so an alias whose target (or whose last previous
    target) was removed can still be rolled back to the newest version it pointed at before.
    """
    for version in reversed(record["history"]):
        if version in existing and version != record["version"]:
            return int(version)
    return None


def stepped_back(
    record: dict[str, Any] | None, alias: str, model: str, existing: set[int]
) -> tuple[int, list[int]]:
    """Target and history after a rollback: the rollback_target becomes the target, and the
    history entries after it (deleted versions) are dropped. NotFoundError names the way out
    when there is no alias or no existing previous version."""
    if record is None:
        raise NotFoundError(f"model {model!r} has no alias {alias!r} to roll back")
    target = rollback_target(record, existing)
    if target is None:
        gone = [v for v in record["history"] if v not in existing]
        why = f" (previous versions {gone} were deleted)" if gone else ""
        raise NotFoundError(
            f"alias {alias!r} of model {model!r} has no previous version to roll back to{why}; "
            f"point it at a version with `digits models promote VERSION --alias {alias}`"
        )
    history = record["history"]
    return target, history[: len(history) - 1 - history[::-1].index(target)]


def protected_versions(records: dict[str, dict[str, Any]], existing: set[int]) -> set[int]:
    """Versions gc must keep for the aliases: each current target, its rollback target (the
    newest existing version of its history, where rollback would go), its canary and shadow."""
    protected: set[int] = set()
    for record in records.values():
        protected.add(int(record["version"]))
        target = rollback_target(record, existing)
        protected.update([] if target is None else [target])
        protected.update(record[k]["version"] for k in ("canary", "shadow") if record.get(k))
    return protected

"""Alias records of the registry: one small JSON object per alias, changed by one read-modify-write.

A record holds the alias's target ``version``, the stack of previous targets ``history`` (where
``rollback`` goes), and optionally the rollout state every replica reads on its poll: a
``canary`` ``{"version", "percent"}`` and a ``shadow`` ``{"version", "percent"}``, plus
``events``: the append-only log of every change (``time`` UTC, ``event``, ``actor``, ``reason``,
``version`` after the change). Records written before canary/shadow/events existed load as
they are (the fields are optional).

Every change goes through `update_record` (read, apply a pure change, write atomically). The
caller serialises it (the local backend holds the model's lock file); an object-store backend
implements the same step as a conditional write (If-Match on the record's ETag).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError, NotFoundError
from registry.files import write_atomic

ALIASES_DIR = "aliases"
# Enough to roll back many times; bounded so the file stays small.
MAX_HISTORY = 50
# The event log: ~200 bytes an event, so ~100 kB at most; older events fall off the front.
MAX_EVENTS = 500

Record = dict[str, Any]
Change = Callable[[Record | None], Record]


def alias_path(model_dir: Path, alias: str) -> Path:
    return model_dir / ALIASES_DIR / f"{alias}.json"


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds (events are ordered by it)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def read_alias(path: Path) -> Record | None:
    """Return the alias record ``{"version", "history", ...}``, or None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(data)
    except ValueError as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from err
    problem = _problem(record)
    if problem:
        raise IntegrityError(f"{path}: not an alias record ({problem})")
    return record  # type: ignore[no-any-return]


def _problem(record: Any) -> str | None:
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


StatCache = dict[Path, tuple[tuple[int, int, int], Record]]


def read_all_aliases(model_dir: Path, cache: StatCache | None = None) -> dict[str, Record]:
    """Every alias record of a model, keyed by alias name.

    With ``cache``, a file whose (inode, mtime, size) did not change is not parsed again: records
    carry an event log of up to MAX_EVENTS entries, and pollers read them every few seconds.
    Writes replace the file by rename, so a changed record always has a new inode.
    """
    directory = model_dir / ALIASES_DIR
    if not directory.is_dir():
        return {}
    records = {}
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith("."):
            continue  # a temporary file of an interrupted write
        record = _read_cached(path, cache) if cache is not None else read_alias(path)
        if record is not None:
            records[path.stem] = record
    return records


def _read_cached(path: Path, cache: StatCache) -> Record | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    hit = cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    record = read_alias(path)
    if record is not None:
        cache[path] = (key, record)
    return record


def update_record(path: Path, alias: str, change: Change) -> Record:
    """The one read-modify-write of an alias record; returns the record as written.

    ``change`` gets a copy of the current record (None if the alias does not exist) and returns
    the new one; it raises to refuse (nothing is written). The caller holds the model lock.
    """
    current = read_alias(path)
    record = change(copy.deepcopy(current))
    record["alias"] = alias
    record["history"] = list(record.get("history", []))[-MAX_HISTORY:]
    record["events"] = list(record.get("events", []))[-MAX_EVENTS:]
    record["updated_at"] = utc_now()
    problem = _problem(record)
    if problem:  # a bug in a change function must never reach the disk
        raise ValueError(f"refusing to write an invalid alias record: {problem}")
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, (json.dumps(record, indent=2) + "\n").encode())
    return record


def event(kind: str, version: int, actor: str, reason: str, **extra: Any) -> dict[str, Any]:
    """One log entry: what happened (``kind``), the alias's target after it, who and why."""
    return {"time": utc_now(), "event": kind, "version": version, "actor": actor,
            "reason": reason, **extra}  # fmt: skip


def point(target: int, kind: str, actor: str, reason: str) -> Change:
    """Change: move the alias to ``target``, pushing the old target on its history.

    A canary or shadow of the new target ends (it is production now); others stay.
    """

    def change(record: Record | None) -> Record:
        if record is None:
            record = {"version": target, "history": [], "events": []}
            previous = None
        else:
            previous = int(record["version"])
            if previous != target:
                record["history"] = [*record["history"], previous]
            record["version"] = target
        for key in ("canary", "shadow"):
            if (record.get(key) or {}).get("version") == target:
                record.pop(key)
        entry = event(kind, target, actor, reason, previous=previous)
        record["events"] = [*record.get("events", []), entry]
        return record

    return change


def step_back(
    model: str, alias: str, exists: Callable[[int], bool], actor: str, reason: str
) -> Change:
    """Change: move the alias to the last entry of its history (popping it)."""

    def change(record: Record | None) -> Record:
        if record is None:
            raise NotFoundError(f"model {model!r} has no alias {alias!r} to roll back")
        if not record["history"]:
            raise NotFoundError(
                f"alias {alias!r} of model {model!r} has no previous version to roll back to"
            )
        *history, previous = record["history"]
        if not exists(previous):
            raise NotFoundError(
                f"cannot roll back {alias!r} of model {model!r}: previous version {previous} "
                "was deleted"
            )
        current = int(record["version"])
        record["history"] = history
        record["version"] = previous
        entry = event("rollback", previous, actor, reason, previous=current)
        record["events"] = [*record.get("events", []), entry]
        return record

    return change

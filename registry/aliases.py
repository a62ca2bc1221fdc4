"""Alias records: one small JSON document per alias, its target and its previous targets.

The same bytes are stored by every backend (``<model>/aliases/<alias>.json``); what differs is
how a write is made conditional (a file lock locally, an ETag condition on object storage).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from registry.errors import IntegrityError, NotFoundError

ALIASES_DIR = "aliases"
# Enough to roll back many times; bounded so the record stays small.
MAX_HISTORY = 50


def decode_alias(data: bytes, where: str) -> dict[str, Any]:
    """Parse an alias record ``{"version", "history", ...}`` (IntegrityError when malformed)."""
    try:
        record = json.loads(data)
    except ValueError as err:
        raise IntegrityError(f"{where}: not valid JSON ({err})") from err
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("version"), int)
        or not isinstance(record.get("history"), list)
        or not all(isinstance(v, int) for v in record["history"])
    ):
        raise IntegrityError(f"{where}: not an alias record (needs 'version' and 'history')")
    return record


def encode_alias(alias: str, version: int, history: list[int]) -> bytes:
    """The stored form of an alias pointing at ``version`` (history bounded to MAX_HISTORY)."""
    record = {
        "alias": alias,
        "version": version,
        "history": history[-MAX_HISTORY:],
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return (json.dumps(record, indent=2) + "\n").encode()


def pointed(record: dict[str, Any] | None, target: int) -> tuple[int, list[int]] | None:
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
    """Versions gc must keep for the aliases: each current target and its rollback target
    (the newest existing version of its history, where rollback would go)."""
    protected: set[int] = set()
    for record in records.values():
        protected.add(int(record["version"]))
        target = rollback_target(record, existing)
        protected.update([] if target is None else [target])
    return protected

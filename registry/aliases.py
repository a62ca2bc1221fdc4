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


def stepped_back(record: dict[str, Any] | None, alias: str, model: str) -> tuple[int, list[int]]:
    """Target and history after a rollback: the last history entry becomes the target."""
    if record is None:
        raise NotFoundError(f"model {model!r} has no alias {alias!r} to roll back")
    if not record["history"]:
        raise NotFoundError(
            f"alias {alias!r} of model {model!r} has no previous version to roll back to"
        )
    *history, previous = record["history"]
    return int(previous), history


def protected_versions(records: dict[str, dict[str, Any]]) -> set[int]:
    """Versions gc must keep for the aliases: each current target and its rollback target."""
    protected: set[int] = set()
    for record in records.values():
        protected.add(int(record["version"]))
        protected.update(record["history"][-1:])
    return protected

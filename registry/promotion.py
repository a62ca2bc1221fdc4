"""Alias moves as compare-and-swap loops, shared by both backends (and promote's ``expected``)."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from typing import Any, Final

from registry import aliases as alias_records
from registry.errors import ConflictError
from registry.storage import Storage

_CAS_ATTEMPTS = 200  # alias compare-and-swap retries before giving up (8 writers need ~8)

Move = Callable[[dict[str, Any] | None], tuple[int, list[int]] | None]


class _Unconditional:
    def __repr__(self) -> str:
        return "UNCONDITIONAL"


UNCONDITIONAL: Final = _Unconditional()
"""Default of ``promote(expected=...)``: move the alias wherever it points now."""

Expected = int | None | _Unconditional


def promotion(name: str, alias: str, target: int, expected: Expected) -> Move:
    """The move of ``promote``: point at ``target``, if the alias is where ``expected`` says."""

    def move(record: dict[str, Any] | None) -> tuple[int, list[int]] | None:
        current = None if record is None else int(record["version"])
        if not isinstance(expected, _Unconditional) and current != expected:
            raise ConflictError(
                f"alias {alias!r} of model {name!r} points to {current}, not the expected "
                f"{expected}; nothing was changed"
            )
        return alias_records.pointed(record, target)

    return move


Change = Callable[[dict[str, Any] | None], dict[str, Any] | None]


def update_record(storage: Storage, name: str, alias: str, change: Change) -> dict[str, Any] | None:
    """The one read-modify-write of an alias record: read it with its ETag, compute the new
    record with ``change`` (a copy of the old one or None -> the new one, or None for no
    change; it raises to refuse), write it only if the ETag held.

    A lost race (someone changed the alias in between) re-reads and retries with jittered
    back-off, so concurrent writers never overwrite each other's update (a file lock locally,
    If-Match on object storage). Returns the record as it was before the change.
    """
    for attempt in range(_CAS_ATTEMPTS):
        found = storage.read_alias(name, alias)
        record, etag = found if found is not None else (None, None)
        new = change(copy.deepcopy(record))
        if new is None:
            return record
        data = alias_records.encode_record(alias, new)
        if storage.write_alias(name, alias, data, etag=etag, target=int(new["version"])):
            return record
        time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
    raise ConflictError(f"alias {alias!r} of model {name!r} kept changing; gave up")


def move_alias(
    storage: Storage, name: str, alias: str, move: Move, *, kind: str = "promote",
    actor: str = "", reason: str = "",
) -> int | None:  # fmt: skip
    """Move the alias as ``move`` says (target and history), logging the move as ``kind``.

    Returns the previous target (None when the alias was new).
    """

    def change(record: dict[str, Any] | None) -> dict[str, Any] | None:
        step = move(record)
        return None if step is None else alias_records.moved(record, *step, kind, actor, reason)

    record = update_record(storage, name, alias, change)
    return None if record is None else int(record["version"])

"""Alias moves as compare-and-swap loops, shared by both backends (and promote's ``expected``)."""

from __future__ import annotations

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


def move_alias(storage: Storage, name: str, alias: str, move: Move) -> int | None:
    """Read the alias with its ETag, compute the new record, write it if the ETag held.

    A lost race (someone moved the alias in between) re-reads and retries with jittered
    back-off, so concurrent movers never overwrite each other's update. Returns the previous
    target (None when the alias was new).
    """
    for attempt in range(_CAS_ATTEMPTS):
        found = storage.read_alias(name, alias)
        record, etag = found if found is not None else (None, None)
        previous = None if record is None else int(record["version"])
        change = move(record)
        if change is None:
            return previous
        data = alias_records.encode_alias(alias, *change)
        if storage.write_alias(name, alias, data, etag=etag, target=change[0]):
            return previous
        time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
    raise ConflictError(f"alias {alias!r} of model {name!r} kept changing; gave up")

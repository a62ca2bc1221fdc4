"""Alias files of the registry: one small JSON file per alias, with the previous targets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError, NotFoundError
from registry.files import write_atomic

ALIASES_DIR = "aliases"
# Enough to roll back many times; bounded so the file stays small.
MAX_HISTORY = 50


def alias_path(model_dir: Path, alias: str) -> Path:
    return model_dir / ALIASES_DIR / f"{alias}.json"


def read_alias(path: Path) -> dict[str, Any] | None:
    """Return the alias record ``{"version", "history", ...}``, or None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(data)
    except ValueError as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from err
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("version"), int)
        or not isinstance(record.get("history"), list)
        or not all(isinstance(v, int) for v in record["history"])
    ):
        raise IntegrityError(f"{path}: not an alias record (needs 'version' and 'history')")
    return record


def read_all_aliases(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Every alias record of a model, keyed by alias name."""
    directory = model_dir / ALIASES_DIR
    if not directory.is_dir():
        return {}
    records = {}
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith("."):
            continue  # a temporary file of an interrupted write
        record = read_alias(path)
        if record is not None:
            records[path.stem] = record
    return records


def write_alias(path: Path, alias: str, version: int, history: list[int]) -> None:
    """Atomically replace the alias file (callers hold the model lock for read-modify-write)."""
    record = {
        "alias": alias,
        "version": version,
        "history": history[-MAX_HISTORY:],
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, (json.dumps(record, indent=2) + "\n").encode())


def point_alias(path: Path, alias: str, target: int) -> int | None:
    """Move the alias to ``target``, pushing the old target on its history; return the old one."""
    record = read_alias(path)
    previous = None if record is None else int(record["version"])
    if previous == target:
        return previous  # no-op: keep the history free of repeats
    history = [] if record is None else [*record["history"], previous]
    write_alias(path, alias, target, history)
    return previous


def rollback_target(record: dict[str, Any], existing: set[int]) -> int | None:
    """The newest entry of the alias's history that still exists, else None.

    Versions deleted by hand are skipped, so an alias whose target (or whose last previous
    target) was removed can still be rolled back to the newest version it pointed at before.
    """
    for version in reversed(record["history"]):
        if version in existing and version != record["version"]:
            return int(version)
    return None


def step_back(path: Path, alias: str, model: str, existing: set[int]) -> int:
    """Move the alias to its rollback_target and return that version.

    History entries newer than the target (deleted versions) are dropped with it. Raises
    NotFoundError naming the way out when there is no alias or no existing previous version.
    """
    record = read_alias(path)
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
    write_alias(path, alias, target, history[: len(history) - 1 - history[::-1].index(target)])
    return target

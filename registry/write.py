"""The two writers of local version directories: atomic publish and garbage collection."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from registry import aliases as alias_records
from registry import files as files
from registry import format as fmt
from registry.prepare import Prepared

ALIAS_SUFFIX = ".json"


def publish_version(
    model_dir: Path,
    name: str,
    prepared: Prepared,
    before_rename: Callable[[Path], None] | None = None,
) -> tuple[int, Path, dict[str, Any]]:
    """Stage, claim the next number under the model lock, rename into place; return the version.

    A staged directory becomes visible only by one rename, so readers see a complete version
    or none; a publisher killed at any point leaves at most a hidden ``.staging-*`` directory.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    lock = model_dir / fmt.LOCK_FILE
    # Shared lock: gc (exclusive) never sees a staging directory before its owner locks it.
    with files.file_lock(lock, shared=True):
        staging = Path(tempfile.mkdtemp(prefix=fmt.STAGING_PREFIX, dir=model_dir))
        staging_fd = files.lock_directory(staging)
    try:
        listed = {fmt.WEIGHTS_FILE: fmt.file_entry(prepared.weights)}
        files.write_new_file(staging / fmt.WEIGHTS_FILE, prepared.weights)
        for file_name, source in sorted(prepared.extras.items()):
            if isinstance(source, bytes):
                files.write_new_file(staging / file_name, source)
            else:
                files.copy_new_file(Path(source), staging / file_name)
            listed[file_name] = fmt.file_entry_of(staging / file_name)
        with files.file_lock(lock):
            # The exclusive lock makes the number ours; the counter keeps it from being reused.
            version = fmt.highest_version_ever(model_dir) + 1
            manifest_bytes = fmt.encode_manifest(prepared.manifest(name, version, listed))
            files.write_new_file(staging / fmt.MANIFEST_FILE, manifest_bytes)
            checksum = fmt.encode_manifest_checksum(manifest_bytes)
            files.write_new_file(staging / fmt.MANIFEST_CHECKSUM_FILE, checksum)
            files.make_read_only(staging)
            files.fsync_dir(staging)
            if before_rename is not None:
                before_rename(staging)
            target = model_dir / str(version)
            os.rename(staging, target)
            files.fsync_dir(model_dir)
            # The version is published now; the counter is a hint that max(directories) backs up.
            with contextlib.suppress(OSError):
                files.write_atomic(model_dir / fmt.COUNTER_FILE, f"{version}\n".encode())
    except BaseException:
        with contextlib.suppress(OSError):
            files.remove_tree(staging)
        raise
    finally:
        os.close(staging_fd)
    # Hand back what a later get() returns (JSON types: lists, not tuples or NumPy scalars).
    return version, target, json.loads(manifest_bytes)


def collect_garbage(
    model_dir: Path, keep: int, read_aliases: Callable[[], Mapping[str, dict[str, Any]]]
) -> list[int]:
    """Delete all but the newest ``keep`` versions and every alias's current and previous target."""
    deleted = []
    with files.file_lock(model_dir / fmt.LOCK_FILE):
        versions = fmt.version_numbers(model_dir)
        protected = set(versions[-keep:]) | alias_records.protected_versions(
            dict(read_aliases()), set(versions)
        )
        # Record the highest number before deleting anything, so it is never handed out again.
        highest = fmt.highest_version_ever(model_dir)
        files.write_atomic(model_dir / fmt.COUNTER_FILE, f"{highest}\n".encode())
        for version in versions:
            if version in protected:
                continue
            # Rename first so a half-deleted directory never looks like a version.
            trash = model_dir / f"{fmt.TRASH_PREFIX}{version}-{os.getpid()}"
            os.rename(model_dir / str(version), trash)
            files.fsync_dir(model_dir)
            files.remove_tree(trash)
            deleted.append(version)
        _remove_leftovers(model_dir)
    return deleted


def _remove_leftovers(model_dir: Path) -> None:
    """Run under the exclusive lock, so no live publisher is between mkdir and flock."""
    for entry in model_dir.iterdir():
        if (
            entry.name.startswith(fmt.STAGING_PREFIX) and files.is_directory_abandoned(entry)
        ) or entry.name.startswith(fmt.TRASH_PREFIX):
            files.remove_tree(entry)
        elif entry.name.startswith(".tmp-"):
            entry.unlink()
    alias_dir = model_dir / alias_records.ALIASES_DIR
    if alias_dir.is_dir():
        for entry in alias_dir.glob(".tmp-*"):
            entry.unlink()

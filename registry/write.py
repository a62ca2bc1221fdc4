"""The two writers of version directories: atomic publish and garbage collection."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.mlp import layer_sizes_of
from core.version import package_version
from registry import aliases as aliases_file
from registry import files as files
from registry import format as fmt
from registry.errors import InvalidNameError, validate_file_name

ExtraFiles = Mapping[str, "str | os.PathLike[str] | bytes"]


def publish_version(
    model_dir: Path,
    name: str,
    params: Mapping[str, Any],
    manifest: Mapping[str, Any],
    extra_files: ExtraFiles | None,
    before_rename: Callable[[Path], None] | None = None,
) -> tuple[int, Path, dict[str, Any]]:
    """Stage, claim the next number under the model lock, rename into place; return the version.

    A staged directory becomes visible only by one rename, so readers see a complete version
    or none; a publisher killed at any point leaves at most a hidden ``.staging-*`` directory.
    """
    fields = _caller_fields(manifest, params)
    weights, tensors = fmt.encode_weights(params)
    extras = {validate_file_name(k): v for k, v in (extra_files or {}).items()}
    if clash := fmt.RESERVED_FILES.intersection(extras):
        raise InvalidNameError(f"extra file name {sorted(clash)[0]!r} is reserved")
    model_dir.mkdir(parents=True, exist_ok=True)
    lock = model_dir / fmt.LOCK_FILE
    # Shared lock: gc (exclusive) never sees a staging directory before its owner locks it.
    with files.file_lock(lock, shared=True):
        staging = Path(tempfile.mkdtemp(prefix=fmt.STAGING_PREFIX, dir=model_dir))
        staging_fd = files.lock_directory(staging)
    try:
        listed = {fmt.WEIGHTS_FILE: fmt.file_entry(weights)}
        files.write_new_file(staging / fmt.WEIGHTS_FILE, weights)
        for file_name, source in sorted(extras.items()):
            if isinstance(source, bytes):
                files.write_new_file(staging / file_name, source)
            else:
                files.copy_new_file(Path(source), staging / file_name)
            listed[file_name] = fmt.file_entry_of(staging / file_name)
        with files.file_lock(lock):
            # The exclusive lock makes the number ours; the counter keeps it from being reused.
            version = fmt.highest_version_ever(model_dir) + 1
            full = {
                **fields,
                "format": fmt.FORMAT_VERSION,
                "name": name,
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": listed,
                "tensors": tensors,
                "package_version": package_version(),
            }
            manifest_bytes = fmt.encode_manifest(full)
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


def collect_garbage(model_dir: Path, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` versions and every alias's current and previous target."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
    deleted = []
    with files.file_lock(model_dir / fmt.LOCK_FILE):
        versions = fmt.version_numbers(model_dir)
        protected = set(versions[-keep:])
        for record in aliases_file.read_all_aliases(model_dir).values():
            protected.add(record["version"])
            protected.update(record["history"][-1:])
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
    alias_dir = model_dir / aliases_file.ALIASES_DIR
    if alias_dir.is_dir():
        for entry in alias_dir.glob(".tmp-*"):
            entry.unlink()


def _caller_fields(manifest: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(manifest, Mapping):
        raise ValueError(f"manifest must be a mapping, got {type(manifest).__name__}")
    if clash := fmt.REGISTRY_KEYS.intersection(manifest):
        raise ValueError(f"manifest keys {sorted(clash)} are written by the registry itself")
    fields = dict(manifest)
    if "layer_sizes" not in fields:
        fields["layer_sizes"] = _infer_layer_sizes(params)
    fmt.encode_manifest(fields)  # fail on NaN or non-JSON values before touching the disk
    return fields


def _infer_layer_sizes(params: Mapping[str, Any]) -> list[int] | None:
    """784-128-40-10 from W1 (128, 784), W2 (40, 128), W3 (10, 40); None for other layouts."""
    try:
        return list(layer_sizes_of(params))
    except ValueError:
        return None

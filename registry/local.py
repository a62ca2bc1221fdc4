"""LocalStorage: the registry in a directory (the default backend), safe across processes.

Layout of the root::

    <model>/<N>/weights.safetensors   the parameters (no pickle, no safetensors metadata)
    <model>/<N>/manifest.json         name, version, created_at, metrics, ..., files' sha256 + size
    <model>/<N>/manifest.sha256       checksum of manifest.json (``sha256sum -c`` format)
    <model>/aliases/<alias>.json      {"version": N, "history": [previous targets]}
    <model>/.lock  .last_version  .staging-*   lock, highest number ever used, publishes in flight

Publishing stages a directory and renames it into place; aliases are replaced atomically under
the model's flock, which also makes their compare-and-set and gc exclude each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from registry import aliases as alias_records
from registry import files as files
from registry import format as fmt
from registry.errors import IntegrityError, NotFoundError, is_valid_model_name
from registry.prepare import Prepared
from registry.write import collect_garbage, publish_version


class LocalStorage:
    """A directory of models (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def version_location(self, name: str, version: int) -> str:
        return str(self.root / name / str(version))

    def local_path(self, name: str, version: int) -> Path | None:
        return self.root / name / str(version)

    def _check_root(self) -> None:
        """A registry path that is a file is a mistake to name, not an empty registry."""
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(
                f"registry {self.root} is not a directory (set --registry or DIGITS_REGISTRY "
                "to a directory)"
            )

    def model_names(self) -> list[str]:
        self._check_root()
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if is_valid_model_name(entry.name) and entry.is_dir() and fmt.version_numbers(entry)
        )

    def version_numbers(self, name: str) -> list[int]:
        self._check_root()
        return fmt.version_numbers(self.root / name)

    def publish(
        self, name: str, prepared: Prepared, before_commit: Callable[[Any], None] | None
    ) -> tuple[int, dict[str, Any]]:
        version, _path, manifest = publish_version(self.root / name, name, prepared, before_commit)
        return version, manifest

    def read_manifest(self, name: str, version: int) -> dict[str, Any]:
        path = self.root / name / str(version)
        if not path.is_dir():
            raise NotFoundError(f"model {name!r} has no version {version} in {self.location}")
        try:
            return fmt.read_manifest(path)
        except IntegrityError:
            if not path.is_dir():  # deleted by gc while we were reading it
                raise NotFoundError(
                    f"version {version} of model {name!r} was just deleted"
                ) from None
            raise

    def read_file(self, name: str, version: int, manifest: Mapping[str, Any], file: str) -> bytes:
        path = self.root / name / str(version) / file
        try:
            return path.read_bytes()
        except FileNotFoundError as err:
            raise IntegrityError(f"{path}: listed in the manifest but missing") from err

    def _alias_path(self, name: str, alias: str) -> Path:
        return self.root / name / alias_records.ALIASES_DIR / f"{alias}.json"

    def read_alias(self, name: str, alias: str) -> tuple[dict[str, Any], str] | None:
        path = self._alias_path(name, alias)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return alias_records.decode_alias(data, str(path)), files.sha256_bytes(data)

    def read_aliases(self, name: str) -> dict[str, dict[str, Any]]:
        directory = self.root / name / alias_records.ALIASES_DIR
        if not directory.is_dir():
            return {}
        records = {}
        for path in sorted(directory.glob("*.json")):
            if path.name.startswith("."):
                continue  # a temporary file of an interrupted write
            found = self.read_alias(name, path.stem)
            if found is not None:
                records[path.stem] = found[0]
        return records

    def write_alias(
        self, name: str, alias: str, data: bytes, *, etag: str | None, target: int
    ) -> bool:
        model_dir = self.root / name
        with files.file_lock(model_dir / fmt.LOCK_FILE):
            # Under the lock gc cannot delete the target between this check and the write.
            if not (model_dir / str(target)).is_dir():
                raise NotFoundError(f"model {name!r} has no version {target} (deleted?)")
            current = self.read_alias(name, alias)
            if (None if current is None else current[1]) != etag:
                return False
            path = self._alias_path(name, alias)
            path.parent.mkdir(exist_ok=True)
            files.write_atomic(path, data)
            return True

    def collect_garbage(self, name: str, keep: int) -> list[int]:
        return collect_garbage(self.root / name, keep, lambda: self.read_aliases(name))

    def state_token(self, name: str) -> str:
        """Lists one directory and reads the small alias files; never hashes weights."""
        versions = self.version_numbers(name)
        parts = [f"latest={versions[-1] if versions else 0}"]
        try:
            records = self.read_aliases(name)
            parts += [f"{alias}={record['version']}" for alias, record in records.items()]
        except IntegrityError:
            parts.append("aliases=invalid")
        return ";".join(parts)

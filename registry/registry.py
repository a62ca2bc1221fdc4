"""Model registry: numbered, immutable, checksummed model versions with movable aliases.

Layout of ``root``::

    <model>/<N>/weights.safetensors   the parameters (no pickle, no safetensors metadata)
    <model>/<N>/manifest.json         name, version, created_at, metrics, ..., files' sha256 + size
    <model>/<N>/manifest.sha256       checksum of manifest.json (``sha256sum -c`` format)
    <model>/aliases/<alias>.json      {"version": N, "history": [previous targets]}
    <model>/.lock  .last_version  .staging-*   lock, highest number ever used, publishes in flight
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from registry import aliases as aliases_file
from registry import files as files
from registry import format as fmt
from registry.errors import (
    LATEST,
    ConflictError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    RegistryError,
    describe_versions,
    is_valid_model_name,
    validate_alias,
    validate_model_name,
)
from registry.write import ExtraFiles, collect_garbage, publish_version

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_ROOT",
    "LATEST",
    "REGISTRY_ENV_VAR",
    "UNCONDITIONAL",
    "ConflictError",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "ModelVersion",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "default_root",
    "validate_model_name",
]

DEFAULT_MODEL_NAME = "digits"
DEFAULT_ALIAS = "production"
REGISTRY_ENV_VAR = "DIGITS_REGISTRY"
DEFAULT_ROOT = "models"  # the registry when neither a flag nor DIGITS_REGISTRY names one

Ref = int | str | None


class _Unconditional(enum.Enum):
    """Type of the ``expected`` default of ``Registry.promote``: move the alias whatever it is."""

    TOKEN = "unconditional"


UNCONDITIONAL = _Unconditional.TOKEN


def default_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$DIGITS_REGISTRY`` when set and non-empty, else ``./models``."""
    env = os.environ if environ is None else environ
    return Path(env.get(REGISTRY_ENV_VAR) or DEFAULT_ROOT)


@dataclass(frozen=True)
class ModelVersion:
    """One published version: its directory and its (checksum-verified) manifest."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class LoadedModel:
    """A verified version with its parameters, ready for ``MLP.from_params``."""

    name: str
    version: int
    params: dict[str, NDArray[Any]]
    manifest: dict[str, Any]


class Registry:
    """A directory of models; safe for concurrent publishers (threads and processes)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ---- publish -------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        params: Mapping[str, Any],
        manifest: Mapping[str, Any],
        extra_files: ExtraFiles | None = None,
        *,
        _before_rename: Callable[[Path], None] | None = None,
    ) -> ModelVersion:
        """Publish a new version atomically and return it; its number is never reused.

        ``manifest`` holds the caller's fields (layer_sizes, loss, metrics, ...); the registry adds
        name, version, created_at, files, tensors and package_version. ``extra_files`` maps a
        file name to a path or bytes stored beside the weights. ``_before_rename`` is a test hook
        called with the fully staged directory just before it becomes visible.
        """
        version, path, full = publish_version(
            self._model_dir(name), name, params, manifest, extra_files, _before_rename
        )
        return ModelVersion(name, version, path, full)

    # ---- read ----------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Names of the models that have at least one published version."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if is_valid_model_name(entry.name) and entry.is_dir() and fmt.version_numbers(entry)
        )

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every published version, oldest first (versions deleted meanwhile are skipped)."""
        found = []
        for version in self._existing_versions(name):
            with contextlib.suppress(NotFoundError):
                found.append(self.get(name, version))
        return found

    def get(self, name: str, version: int) -> ModelVersion:
        """One version with its manifest (checked against manifest.sha256, weights not read)."""
        model_dir = self._model_dir(name)
        path = model_dir / str(version)
        if not isinstance(version, int) or isinstance(version, bool) or not path.is_dir():
            raise NotFoundError(
                f"model {name!r} has no version {version!r} in {self.root} "
                f"(versions: {describe_versions(self._existing_versions(name))})"
            )
        try:
            manifest = fmt.read_manifest(path)
        except IntegrityError:
            if not path.is_dir():  # deleted by gc while we were reading it
                raise NotFoundError(
                    f"version {version} of model {name!r} was just deleted"
                ) from None
            raise
        if manifest.get("name") != name or manifest.get("version") != version:
            raise IntegrityError(
                f"{path / fmt.MANIFEST_FILE}: describes {manifest.get('name')!r} version "
                f"{manifest.get('version')!r}, not {name!r} version {version}"
            )
        return ModelVersion(name, version, path, manifest)

    def resolve(self, name: str, ref: Ref = None) -> int:
        """Version number of ``ref``: int, digit string, alias or 'latest'.

        ``None`` means the ``production`` alias when it is set, else the latest version.
        """
        model_dir = self._model_dir(name)
        versions = self._existing_versions(name)
        if ref is None:
            ref = (
                DEFAULT_ALIAS
                if aliases_file.alias_path(model_dir, DEFAULT_ALIAS).exists()
                else LATEST
            )
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidNameError(f"version reference must be an int or a string, got {ref!r}")
        if isinstance(ref, str) and ref.isdigit():
            ref = int(ref)
        if ref == LATEST:
            return versions[-1]
        if isinstance(ref, int):
            if ref not in versions:
                raise NotFoundError(
                    f"model {name!r} has no version {ref} in {self.root} "
                    f"(versions: {describe_versions(versions)})"
                )
            return ref
        record = aliases_file.read_alias(aliases_file.alias_path(model_dir, validate_alias(ref)))
        if record is None:
            known = ", ".join(sorted(self.aliases(name))) or "none"
            raise NotFoundError(f"model {name!r} has no alias {ref!r} (aliases: {known})")
        if record["version"] not in versions:
            raise NotFoundError(
                f"alias {ref!r} of model {name!r} points to version {record['version']}, "
                "which no longer exists"
            )
        return int(record["version"])

    def load(self, name: str, ref: Ref = None) -> LoadedModel:
        """Resolve ``ref``, verify every file's sha256 and the tensors, then return the weights."""
        version = self.get(name, self.resolve(name, ref))
        listed = version.manifest["files"]
        if fmt.WEIGHTS_FILE not in listed:
            raise IntegrityError(f"{version.path / fmt.MANIFEST_FILE}: does not list the weights")
        weights = b""
        for file_name, entry in sorted(listed.items()):
            if file_name != Path(file_name).name or file_name.startswith("."):
                raise IntegrityError(
                    f"{version.path}: manifest lists a bad file name {file_name!r}"
                )
            is_weights = file_name == fmt.WEIGHTS_FILE
            data = fmt.check_file(version.path / file_name, entry, keep=is_weights)
            if is_weights:
                weights = data  # parse the very bytes that were hashed
        tensors = version.manifest.get("tensors")
        if not isinstance(tensors, dict):
            raise IntegrityError(f"{version.path / fmt.MANIFEST_FILE}: no 'tensors' table")
        params = fmt.decode_weights(weights, tensors, version.path / fmt.WEIGHTS_FILE)
        return LoadedModel(name, version.version, params, version.manifest)

    def verify(self, name: str, ref: Ref = None) -> ModelVersion:
        """Run every check of ``load`` and return the version (raises IntegrityError)."""
        loaded = self.load(name, ref)
        return self.get(name, loaded.version)

    def state_token(self, name: str) -> str:
        """A cheap string that changes whenever a version is published or an alias moves.

        Meant for polling (hot reload): it lists one directory and reads the small alias
        files; it never hashes weights. Missing models give a token too.
        """
        model_dir = self._model_dir(name)
        versions = fmt.version_numbers(model_dir) if model_dir.is_dir() else []
        parts = [f"latest={versions[-1] if versions else 0}"]
        try:
            records = aliases_file.read_all_aliases(model_dir)
            parts += [f"{alias}={record['version']}" for alias, record in records.items()]
        except IntegrityError:
            parts.append("aliases=invalid")
        return ";".join(parts)

    # ---- aliases -------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """Alias name -> version number."""
        model_dir = self._model_dir(name)
        self._existing_versions(name)
        return {a: int(r["version"]) for a, r in aliases_file.read_all_aliases(model_dir).items()}

    def alias_history(self, name: str, alias: str) -> list[int]:
        """Previous targets of ``alias``, oldest first (the last one is where rollback goes)."""
        path = aliases_file.alias_path(self._model_dir(name), validate_alias(alias))
        record = aliases_file.read_alias(path)
        if record is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return list(record["history"])

    def set_alias(self, name: str, alias: str, version: int | str) -> int | None:
        """Point ``alias`` at ``version`` (number or any reference); return the previous target."""
        model_dir = self._model_dir(name)
        path = aliases_file.alias_path(model_dir, validate_alias(alias))
        self._existing_versions(name)  # NotFoundError for an unknown model, before locking
        with files.file_lock(model_dir / fmt.LOCK_FILE):
            return aliases_file.point_alias(path, alias, self.resolve(name, version))

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str = DEFAULT_ALIAS,
        *,
        expected: int | _Unconditional | None = UNCONDITIONAL,
    ) -> int | None:
        """Point ``alias`` at ``version`` if it still points at ``expected``; return the old target.

        A compare-and-set under the model's lock, so a champion/challenger gate promotes only
        over the champion it scored: ``expected`` is the version the alias must point at now,
        ``None`` means the alias must not exist, ``UNCONDITIONAL`` (the default) skips the check
        (like ``set_alias``). Raises ConflictError when the alias points elsewhere, NotFoundError
        for an unknown model or version.
        """
        model_dir = self._model_dir(name)
        path = aliases_file.alias_path(model_dir, validate_alias(alias))
        self._existing_versions(name)
        with files.file_lock(model_dir / fmt.LOCK_FILE):
            target = self.resolve(name, version)
            if expected is not UNCONDITIONAL:
                record = aliases_file.read_alias(path)
                current = None if record is None else int(record["version"])
                if current != expected:
                    raise ConflictError(
                        f"alias {alias!r} of model {name!r} points to "
                        f"{'nothing' if current is None else f'version {current}'}, not "
                        f"{'nothing' if expected is None else f'version {expected}'} as expected"
                    )
            return aliases_file.point_alias(path, alias, target)

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> int:
        """Move ``alias`` back to its previous target and return that version."""
        model_dir = self._model_dir(name)
        path = aliases_file.alias_path(model_dir, validate_alias(alias))
        self._existing_versions(name)
        with files.file_lock(model_dir / fmt.LOCK_FILE):
            return aliases_file.step_back(path, alias, name)

    # ---- garbage collection ----------------------------------------------------------------

    def gc(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions, never an aliased one; return the deleted.

        The version each alias would roll back to is kept too, and so are version numbers:
        the next publish continues after the highest number ever used. Leftovers of crashed
        publishers (staging directories, temporary files) are removed as well.
        """
        model_dir = self._model_dir(name)
        if not model_dir.is_dir():
            self._existing_versions(name)  # raises NotFoundError naming the known models
        return collect_garbage(model_dir, keep)

    # ---- internals -----------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        return self.root / validate_model_name(name)

    def _existing_versions(self, name: str) -> list[int]:
        model_dir = self._model_dir(name)
        versions = fmt.version_numbers(model_dir) if model_dir.is_dir() else []
        if not versions:
            known = ", ".join(self.list_models()) or "none"
            raise NotFoundError(f"model {name!r} not found in {self.root} (models: {known})")
        return versions

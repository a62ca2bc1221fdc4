"""Model registry: numbered, immutable, checksummed model versions with movable aliases.

`Registry(root)` stores models in a directory (`registry.local`, the default) or, for a root
``s3://bucket/prefix``, in S3-compatible object storage (`registry.s3`). Both share this API,
the manifest format and every check made on what is read (docs/registry.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from registry import format as fmt
from registry.alias_moves import DEFAULT_ALIAS, AliasMoves
from registry.errors import (
    LATEST,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    describe_versions,
    validate_alias,
    validate_model_name,
)
from registry.local import LocalStorage
from registry.prepare import ExtraFiles, prepare
from registry.promotion import (
    UNCONDITIONAL,
)
from registry.storage import Storage, as_location, is_object_store
from registry.versions import LoadedModel, ModelVersion, file_where

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_ROOT",
    "REGISTRY_ENV_VAR",
    "UNCONDITIONAL",
    "LoadedModel",
    "ModelVersion",
    "Registry",
    "default_root",
    "open_storage",
]

DEFAULT_MODEL_NAME = "digits"
REGISTRY_ENV_VAR = "DIGITS_REGISTRY"
DEFAULT_ROOT = "models"  # the registry when neither a flag nor DIGITS_REGISTRY names one


Ref = int | str | None


def default_root(environ: Mapping[str, str] | None = None) -> str | Path:
    """``$DIGITS_REGISTRY`` when set and non-empty (a directory or s3:// URL), else ``./models``."""
    env = os.environ if environ is None else environ
    value = env.get(REGISTRY_ENV_VAR) or DEFAULT_ROOT
    return as_location(value)  # type: ignore[no-any-return]


def open_storage(root: str | os.PathLike[str], cache_dir: Path | None = None) -> Storage:
    """The backend of ``root``: S3Storage for ``s3://...``, else LocalStorage."""
    if is_object_store(root):
        from registry.s3 import S3Storage  # boto3 loads only when object storage is used

        return S3Storage(root, cache_dir=cache_dir)
    return LocalStorage(root)


class Registry(AliasMoves):
    """Models in a directory or an S3 bucket; safe for concurrent publishers and promoters.

    ``cache_dir`` (object storage only) keeps verified files locally, keyed by sha256.
    """

    def __init__(self, root: str | os.PathLike[str], *, cache_dir: Path | None = None) -> None:
        self.storage = open_storage(root, cache_dir)
        self.location = self.storage.location
        self.root: Path | str = (
            self.storage.root if isinstance(self.storage, LocalStorage) else self.location
        )

    def __repr__(self) -> str:
        return f"Registry({self.location!r})"

    def publish(
        self,
        name: str,
        params: Mapping[str, Any],
        manifest: Mapping[str, Any],
        extra_files: ExtraFiles | None = None,
        *,
        _before_commit: Callable[[Any], None] | None = None,
    ) -> ModelVersion:
        """Publish a new version atomically and return it; its number is never reused.

        ``manifest`` holds the caller's fields (layer_sizes, loss, metrics, ...); the registry adds
        name, version, created_at, files, tensors and package_version. ``extra_files`` maps a
        file name to a path or bytes stored beside the weights. ``_before_commit`` is a test hook
        called once every file is stored, just before the version becomes visible.
        """
        validate_model_name(name)
        prepared = prepare(params, manifest, extra_files)
        version, full = self.storage.publish(name, prepared, _before_commit)
        return ModelVersion(name, version, self.storage.version_location(name, version), full)

    # ---- read ----------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Names of the models that have at least one published version."""
        return self.storage.model_names()

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every published version, oldest first (versions deleted meanwhile are skipped)."""
        found = []
        for version in self._existing_versions(name):
            try:
                found.append(self.get(name, version))
            except NotFoundError:
                continue
        return found

    def get(self, name: str, version: int) -> ModelVersion:
        """One version with its manifest (checked against its checksum, weights not read)."""
        validate_model_name(name)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise NotFoundError(f"model {name!r} has no version {version!r} in {self.location}")
        try:
            manifest = self.storage.read_manifest(name, version)
        except NotFoundError:
            versions = self._existing_versions(name)  # names the known models when none
            raise NotFoundError(
                f"model {name!r} has no version {version!r} in {self.location} "
                f"(versions: {describe_versions(versions)})"
            ) from None
        where = self.storage.version_location(name, version)
        if manifest.get("name") != name or manifest.get("version") != version:
            raise IntegrityError(
                f"{where}: manifest describes {manifest.get('name')!r} version "
                f"{manifest.get('version')!r}, not {name!r} version {version}"
            )
        return ModelVersion(name, version, where, manifest)

    def resolve(self, name: str, ref: Ref = None) -> int:
        """Version number of ``ref``: int, digit string, alias or 'latest'.

        ``None`` means the ``production`` alias when it is set, else the latest version.
        """
        versions = self._existing_versions(name)
        if ref is None:
            record = self.storage.read_alias(name, DEFAULT_ALIAS)
            if record is None:
                return versions[-1]
            ref = DEFAULT_ALIAS
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidNameError(f"version reference must be an int or a string, got {ref!r}")
        if isinstance(ref, str) and ref.isdigit():
            ref = int(ref)
        if ref == LATEST:
            return versions[-1]
        if isinstance(ref, int):
            if ref not in versions:
                raise NotFoundError(
                    f"model {name!r} has no version {ref} in {self.location} "
                    f"(versions: {describe_versions(versions)})"
                )
            return ref
        found = self.storage.read_alias(name, validate_alias(ref))
        if found is None:
            known = ", ".join(sorted(self.aliases(name))) or "none"
            raise NotFoundError(f"model {name!r} has no alias {ref!r} (aliases: {known})")
        target = int(found[0]["version"])
        if target not in versions:
            raise NotFoundError(
                f"alias {ref!r} of model {name!r} points to version {target}, "
                f"which no longer exists (dangling alias); recover with `digits models rollback "
                f"--alias {ref}` or `digits models promote VERSION --alias {ref}`"
            )
        return target

    def load(self, name: str, ref: Ref = None) -> LoadedModel:
        """Resolve ``ref``, verify every file's sha256 and the tensors, then return the weights."""
        version = self.get(name, self.resolve(name, ref))
        listed = version.manifest["files"]
        if fmt.WEIGHTS_FILE not in listed:
            raise IntegrityError(f"{version.location}: manifest does not list the weights")
        weights = b""
        for file_name, entry in sorted(listed.items()):
            if file_name != Path(file_name).name or file_name.startswith("."):
                raise IntegrityError(f"{version.location}: manifest lists a bad name {file_name!r}")
            data = self.storage.read_file(name, version.version, version.manifest, file_name)
            fmt.check_bytes(data, entry, file_where(version, file_name))
            if file_name == fmt.WEIGHTS_FILE:
                weights = data  # parse the very bytes that were hashed
        tensors = version.manifest.get("tensors")
        if not isinstance(tensors, dict):
            raise IntegrityError(f"{version.location}: manifest has no 'tensors' table")
        params = fmt.decode_weights(weights, tensors, file_where(version, fmt.WEIGHTS_FILE))
        return LoadedModel(name, version.version, params, version.manifest)

    def verify(self, name: str, ref: Ref = None) -> ModelVersion:
        """Run every check of ``load`` and return the version (raises IntegrityError)."""
        loaded = self.load(name, ref)
        return self.get(name, loaded.version)

    def state_token(self, name: str) -> str:
        """A cheap string that changes whenever a version is published or an alias moves.

        Meant for polling (hot reload): locally it lists one directory and reads the alias
        files; on object storage it is one conditional GET (304 when unchanged).
        """
        return self.storage.state_token(validate_model_name(name))

    # ---- garbage collection ----------------------------------------------------------------

    def gc(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions, never an aliased one; return the deleted.

        The version each alias would roll back to is kept too, and so are version numbers:
        the next publish continues after the highest number ever used. Leftovers of crashed
        publishers (staging directories, unreferenced uploads) are removed as well.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
        self._existing_versions(name)
        return self.storage.collect_garbage(name, keep)

    # ---- internals -----------------------------------------------------------------------

    def _existing_versions(self, name: str) -> list[int]:
        versions = self.storage.version_numbers(validate_model_name(name))
        if not versions:
            known = ", ".join(self.list_models()) or "none"
            raise NotFoundError(f"model {name!r} not found in {self.location} (models: {known})")
        return versions

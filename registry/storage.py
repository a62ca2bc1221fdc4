"""The storage interface under `Registry`: where versions, aliases and the change marker live.

Two backends implement it: `registry.local.LocalStorage` (a directory, the default) and
`registry.s3.S3Storage` (an S3-compatible bucket). `Registry` keeps every rule that does not
depend on the medium: name validation, reference resolution, integrity checks of what is read,
alias semantics (history, compare-and-set) and the gc policy's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from registry.prepare import Prepared

S3_SCHEME = "s3://"


def is_object_store(location: object) -> TypeGuard[str]:
    """True for an ``s3://bucket/prefix`` URL (kept as text everywhere: a Path folds its '//')."""
    return isinstance(location, str) and location.startswith(S3_SCHEME)


def as_location(value: Any) -> Any:
    """The one rule for "a directory or an s3:// URL": a URL stays text, other text becomes a
    Path, anything else (a Path, None) is returned unchanged."""
    return Path(value) if isinstance(value, str) and not is_object_store(value) else value


class Storage(Protocol):
    """What a backend stores and how it makes writes atomic and conditional."""

    location: str
    """The registry's address for messages: a directory or ``s3://bucket/prefix``."""

    def version_location(self, name: str, version: int) -> str:
        """Where one version lives (a directory or an s3:// URL of its manifest)."""
        ...

    def model_names(self) -> list[str]:
        """Valid model names having at least one committed version, sorted."""
        ...

    def version_numbers(self, name: str) -> list[int]:
        """Committed versions, ascending; [] for an unknown model."""
        ...

    def publish(
        self, name: str, prepared: Prepared, before_commit: Callable[[Any], None] | None
    ) -> tuple[int, dict[str, Any]]:
        """Store a new version under a fresh number, all or nothing; return number, manifest."""
        ...

    def read_manifest(self, name: str, version: int) -> dict[str, Any]:
        """The version's manifest checked against its checksum.

        Raises NotFoundError when the version does not exist (or vanished), IntegrityError when
        its manifest does not verify.
        """
        ...

    def read_file(self, name: str, version: int, manifest: Mapping[str, Any], file: str) -> bytes:
        """The stored bytes of a listed file (the caller verifies them; IntegrityError if gone)."""
        ...

    def read_alias(self, name: str, alias: str) -> tuple[dict[str, Any], str] | None:
        """The alias record and its ETag (a token that changes with every write), or None."""
        ...

    def read_aliases(self, name: str) -> dict[str, dict[str, Any]]:
        """Every alias record of a model, keyed by alias name."""
        ...

    def write_alias(
        self, name: str, alias: str, data: bytes, *, etag: str | None, target: int
    ) -> bool:
        """Write the alias only if its ETag is still ``etag`` (None: only if it does not exist).

        Returns False when that condition failed (someone else moved it: re-read and retry);
        raises NotFoundError when version ``target`` does not exist.
        """
        ...

    def collect_garbage(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions, never an alias or rollback target."""
        ...

    def state_token(self, name: str) -> str:
        """A cheap string that changes whenever a version is published or an alias moves."""
        ...

    def local_path(self, name: str, version: int) -> Path | None:
        """The version's directory when the backend is a local directory, else None."""
        ...

"""What the registry hands back: a published version (manifest only) and a loaded one (weights)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from registry.errors import RegistryError
from registry.storage import is_object_store


@dataclass(frozen=True)
class ModelVersion:
    """One published version: where it lives and its (checksum-verified) manifest."""

    name: str
    version: int
    location: str
    manifest: dict[str, Any]

    @property
    def path(self) -> Path:
        """The version's directory (local registries only; RegistryError on object storage)."""
        if is_object_store(self.location):
            raise RegistryError(f"version {self.version} lives in object storage, not a directory")
        return Path(self.location)


@dataclass(frozen=True)
class LoadedModel:
    """A verified version with its parameters, ready for ``MLP.from_params``."""

    name: str
    version: int
    params: dict[str, NDArray[Any]]
    manifest: dict[str, Any]


def file_where(version: ModelVersion, file_name: str) -> str:
    """A file of a version for messages: its path, or its version's URL and its name."""
    if is_object_store(version.location):
        return f"{version.location} ({file_name})"
    return str(Path(version.location) / file_name)

"""What a publish stores, whatever the backend: checked caller fields, weights, full manifest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.mlp import layer_sizes_of
from core.version import package_version
from registry import format as fmt
from registry.errors import InvalidNameError, validate_file_name

ExtraFiles = Mapping[str, "str | os.PathLike[str] | bytes"]


@dataclass(frozen=True)
class Prepared:
    """A version ready to store: the caller's manifest fields, weights bytes and extra files."""

    fields: dict[str, Any]
    weights: bytes
    tensors: dict[str, dict[str, Any]]
    extras: dict[str, str | os.PathLike[str] | bytes]

    def manifest(self, name: str, version: int, listed: Mapping[str, Any]) -> dict[str, Any]:
        """The full manifest of ``version``; ``listed`` maps each file to its sha256 and size."""
        return {
            **self.fields,
            "format": fmt.FORMAT_VERSION,
            "name": name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": dict(listed),
            "tensors": self.tensors,
            "package_version": package_version(),
        }


def prepare(
    params: Mapping[str, Any], manifest: Mapping[str, Any], extra_files: ExtraFiles | None
) -> Prepared:
    """Check and encode everything before touching storage (ValueError / InvalidNameError)."""
    fields = _caller_fields(manifest, params)
    weights, tensors = fmt.encode_weights(params)
    extras = {validate_file_name(k): v for k, v in (extra_files or {}).items()}
    if clash := fmt.RESERVED_FILES.intersection(extras):
        raise InvalidNameError(f"extra file name {sorted(clash)[0]!r} is reserved")
    return Prepared(fields, weights, tensors, extras)


def extra_bytes(source: str | os.PathLike[str] | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _caller_fields(manifest: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(manifest, Mapping):
        raise ValueError(f"manifest must be a mapping, got {type(manifest).__name__}")
    if clash := fmt.REGISTRY_KEYS.intersection(manifest):
        raise ValueError(f"manifest keys {sorted(clash)} are written by the registry itself")
    fields = dict(manifest)
    if "layer_sizes" not in fields:
        fields["layer_sizes"] = _infer_layer_sizes(params)
    fmt.encode_manifest(fields)  # fail on NaN or non-JSON values before touching storage
    return fields


def _infer_layer_sizes(params: Mapping[str, Any]) -> list[int] | None:
    """784-128-40-10 from W1 (128, 784), W2 (40, 128), W3 (10, 40); None for other layouts."""
    try:
        return list(layer_sizes_of(params))
    except ValueError:
        return None

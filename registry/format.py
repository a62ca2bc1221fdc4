"""On-disk format of one model version: safetensors weights, manifest.json and its checksum."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from numpy.typing import NDArray

from registry.errors import IntegrityError
from registry.files import sha256_bytes

# Per model directory: a lock file, the highest version number ever claimed, and the prefixes
# of directories that are not (yet / any more) versions.
LOCK_FILE = ".lock"
COUNTER_FILE = ".last_version"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
# Per version directory:
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
# `sha256sum -c manifest.sha256` works inside a version directory.
MANIFEST_CHECKSUM_FILE = "manifest.sha256"
RESERVED_FILES = frozenset({WEIGHTS_FILE, MANIFEST_FILE, MANIFEST_CHECKSUM_FILE})
FORMAT_VERSION = 1
# Keys the registry writes itself; a caller's manifest may not set them.
REGISTRY_KEYS = frozenset(
    {"format", "name", "version", "created_at", "files", "tensors", "package_version", "upload"}
)
_SUPPORTED_DTYPES = frozenset(
    {"bool", "float16", "float32", "float64"}
    | {f"{kind}int{bits}" for kind in ("", "u") for bits in (8, 16, 32, 64)}
)
_CHUNK = 1 << 20
# "__metadata__" is the safetensors header's own key.
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def encode_weights(params: Mapping[str, Any]) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """Serialise ``params`` to safetensors bytes; also return each tensor's shape and dtype."""
    if not params:
        raise ValueError("params is empty: nothing to publish")
    arrays: dict[str, NDArray[Any]] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not _TENSOR_NAME.fullmatch(key) or key == "__metadata__":
            raise ValueError(f"invalid parameter name {key!r}: use A-Z a-z 0-9 . _ - (1-128)")
        array = np.asarray(value)
        if array.dtype.name not in _SUPPORTED_DTYPES:
            raise ValueError(f"parameter {key!r} has unsupported dtype {array.dtype}")
        # safetensors 0.8 silently garbles non-contiguous arrays, so always hand it a C copy.
        arrays[key] = np.ascontiguousarray(array)
    # No metadata: with metadata safetensors writes a non-deterministic header.
    data: bytes = safetensors.numpy.save(arrays)
    tensors = {
        key: {"shape": list(array.shape), "dtype": array.dtype.name}
        for key, array in sorted(arrays.items())
    }
    return data, tensors


def decode_weights(
    data: bytes, expected: Mapping[str, Mapping[str, Any]], path: Path | str
) -> dict[str, NDArray[Any]]:
    """Parse verified safetensors bytes and check names, shapes and dtypes against the manifest."""
    try:
        arrays: dict[str, NDArray[Any]] = safetensors.numpy.load(data)
    except Exception as err:  # the Rust parser raises its own SafetensorError type
        raise IntegrityError(f"{path}: not a valid safetensors file ({err})") from err
    if set(arrays) != set(expected):
        raise IntegrityError(
            f"{path}: tensors {sorted(arrays)} do not match the manifest's {sorted(expected)}"
        )
    for key, array in arrays.items():
        spec = expected[key]
        if not isinstance(spec, Mapping) or not isinstance(spec.get("shape"), list):
            raise IntegrityError(f"{path}: the manifest's entry of tensor {key!r} is malformed")
        want_shape, want_dtype = spec["shape"], spec.get("dtype")
        if list(array.shape) != want_shape or array.dtype.name != want_dtype:
            raise IntegrityError(
                f"{path}: tensor {key!r} is {array.dtype.name}{list(array.shape)}, "
                f"the manifest says {want_dtype}{want_shape}"
            )
    return arrays


def _to_json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_manifest(manifest: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no NaN) so the checksum is stable and readable by any tool."""
    try:
        text = json.dumps(
            manifest, indent=2, sort_keys=True, allow_nan=False, default=_to_json_value
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"manifest cannot be stored as JSON: {err}") from err
    return (text + "\n").encode()


def encode_manifest_checksum(manifest_bytes: bytes) -> bytes:
    return f"{sha256_bytes(manifest_bytes)}  {MANIFEST_FILE}\n".encode()


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """Read manifest.json and check it against manifest.sha256 (cheap: both are small)."""
    manifest_path = version_dir / MANIFEST_FILE
    checksum_path = version_dir / MANIFEST_CHECKSUM_FILE
    try:
        manifest_bytes = manifest_path.read_bytes()
        checksum_text = checksum_path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError as err:
        raise IntegrityError(f"{err.filename}: missing from a published version") from err
    expected = checksum_text.split(" ", 1)[0].strip()
    if sha256_bytes(manifest_bytes) != expected:
        raise IntegrityError(f"{manifest_path}: sha256 does not match {checksum_path.name}")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as err:
        raise IntegrityError(f"{manifest_path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{manifest_path}: not a registry manifest (no 'files' table)")
    return manifest


def file_entry(data: bytes) -> dict[str, Any]:
    return {"sha256": sha256_bytes(data), "size": len(data)}


def file_entry_of(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def check_file(path: Path, expected: Mapping[str, Any], *, keep: bool = False) -> bytes:
    """Check a file's size and sha256 against its manifest entry; return its bytes if ``keep``."""
    if not isinstance(expected, Mapping):
        raise IntegrityError(f"{path}: the manifest's entry for this file is malformed")
    try:
        if keep:
            data = path.read_bytes()
            actual = file_entry(data)
        else:
            data, actual = b"", file_entry_of(path)
    except FileNotFoundError as err:
        raise IntegrityError(f"{path}: listed in the manifest but missing") from err
    if actual["size"] != expected.get("size"):
        raise IntegrityError(
            f"{path}: size {actual['size']} bytes, the manifest says {expected.get('size')}"
        )
    if actual["sha256"] != expected.get("sha256"):
        raise IntegrityError(f"{path}: sha256 does not match the manifest")
    return data


def check_bytes(data: bytes, expected: Mapping[str, Any], where: str) -> None:
    """Check a stored file's size and sha256 against its manifest entry (IntegrityError)."""
    if not isinstance(expected, Mapping):
        raise IntegrityError(f"{where}: the manifest's entry for this file is malformed")
    if len(data) != expected.get("size"):
        raise IntegrityError(
            f"{where}: size {len(data)} bytes, the manifest says {expected.get('size')}"
        )
    if sha256_bytes(data) != expected.get("sha256"):
        raise IntegrityError(f"{where}: sha256 does not match the manifest")


def version_numbers(model_dir: Path) -> list[int]:
    """Sorted version numbers: canonical decimal directory names only (staging is hidden)."""
    try:
        names = os.listdir(model_dir)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and n == str(int(n)) and n != "0")


def highest_version_ever(model_dir: Path) -> int:
    """max(counter file, version directories): numbers survive gc and a lost counter write."""
    try:
        counted = int((model_dir / COUNTER_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        counted = 0
    return max([counted, *version_numbers(model_dir)])

"""Both registry backends for the contract suite, and the faults a test plays on each."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from registry import Registry
from registry.s3 import S3Storage
from tests.helpers.registry_data import flip_byte
from tests.helpers.seaweedfs import BUCKET, SeaweedS3

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.integration)]


def registry_root(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh registry root of ``kind``: a directory, or an s3:// URL on the test server."""
    if kind == "local":
        return str(tmp_path / "models")
    return str(request.getfixturevalue("s3_url"))


def _s3(registry: Registry) -> tuple[Any, S3Storage]:
    storage = registry.storage
    assert isinstance(storage, S3Storage)
    return storage._s3._client, storage


def flip_stored_byte(registry: Registry, name: str, version: int, file: str, offset: int) -> None:
    """Flip one bit of a stored object: a file of the version or its manifest (a disk fault)."""
    if registry.storage.local_path(name, version) is not None:
        flip_byte(registry.storage.local_path(name, version) / file, offset)  # type: ignore[operator]
        return
    client, storage = _s3(registry)
    if file == "manifest.json":
        key = storage._key(name, "versions", f"{version}.json")
    else:
        upload = registry.get(name, version).manifest["upload"]
        key = storage._key(name, "uploads", upload, file)
    stored = client.get_object(Bucket=BUCKET, Key=key)
    data = bytearray(stored["Body"].read())
    data[offset] ^= 0x01
    # Same metadata (the recorded sha256): only the bytes changed, as in a storage fault.
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(data), Metadata=stored["Metadata"])


def stored_version_count(registry: Registry, name: str) -> int:
    """How many publishes' files are really stored, committed or not (version and staging
    directories, or upload prefixes on S3)."""
    if isinstance(registry.root, Path):
        entries = (registry.root / name).iterdir()
        return sum(1 for p in entries if p.name.isdigit() or p.name.startswith(".staging-"))
    client, storage = _s3(registry)
    keys = client.list_objects_v2(Bucket=BUCKET, Prefix=storage._key(name, "uploads", ""))
    return len({item["Key"].split("/")[-2] for item in keys.get("Contents", [])})


def stored_keys(server: SeaweedS3, prefix: str) -> list[str]:
    client: Any = server.client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def delete_behind_the_registrys_back(registry: Registry, name: str, version: int) -> None:
    """Remove a version the way an operator's `rm -rf` or `aws s3 rm` would: not through gc."""
    path = registry.storage.local_path(name, version)
    if path is not None:
        for entry in [path, *path.rglob("*")]:
            entry.chmod(0o755)  # published versions are read-only
        shutil.rmtree(path)
        return
    client, storage = _s3(registry)
    client.delete_object(Bucket=BUCKET, Key=storage._key(name, "versions", f"{version}.json"))

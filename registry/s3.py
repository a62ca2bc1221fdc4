"""S3Storage: the registry in an S3-compatible bucket, atomic with conditional writes only.

Layout under ``s3://bucket/prefix/``::

    <model>/uploads/<id>/<file>       a publish's files, uploaded first under a fresh random id
    <model>/versions/<N>.json         the manifest: written last, create-only (If-None-Match: *);
                                      its sha256 rides in the object's metadata. It IS the commit.
    <model>/aliases/<alias>.json      the alias record, moved by compare-and-swap (If-Match: ETag)
    <model>/state                     rewritten after every commit, alias move or gc, so a server
                                      polls one small object (If-None-Match: ETag, 304 unchanged)

A publisher that dies before its manifest leaves only an unreferenced upload, which no reader
looks at and gc removes once it is older than ORPHAN_GRACE_S. Two publishers that pick the same
number race on the manifest: one create succeeds, the other gets 412 and takes the next number.
The endpoint and credentials come from the standard AWS chain (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, profiles).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry import aliases as alias_records
from registry import format as fmt
from registry.errors import (
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    RegistryError,
    is_valid_model_name,
    validate_file_name,
)
from registry.files import sha256_bytes
from registry.prepare import Prepared, extra_bytes
from registry.s3_cache import BlobCache
from registry.s3_client import Missing, NotModified, Precondition, S3Client

# Old enough that no live publisher is still between its uploads and its manifest.
ORPHAN_GRACE_S = 3600.0
_MAX_NUMBER_ATTEMPTS = 1000
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256_META = "sha256"


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ("bucket", "a/b/"); InvalidNameError for anything else."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    parts = [part for part in prefix.split("/") if part]
    if not _BUCKET.fullmatch(bucket) or not all(_PREFIX_PART.fullmatch(p) for p in parts):
        raise InvalidNameError(
            f"invalid registry URL {url!r}: use s3://bucket[/prefix], a 3-63 character bucket "
            "name and prefix parts of A-Z a-z 0-9 . _ -"
        )
    return bucket, "".join(f"{part}/" for part in parts)


class S3Storage:
    """A registry in ``s3://bucket/prefix`` (see the module docstring for the protocol)."""

    def __init__(self, url: str, *, cache_dir: Path | None = None) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._s3 = S3Client(self.bucket, self.location)
        self._cache = BlobCache(cache_dir) if cache_dir is not None else None
        self._state: dict[str, tuple[str, str]] = {}  # model -> (ETag, token) of its state

    def _key(self, name: str, *parts: str) -> str:
        return f"{self.prefix}{name}/" + "/".join(parts)

    def version_location(self, name: str, version: int) -> str:
        return f"s3://{self.bucket}/{self._key(name, 'versions', f'{version}.json')}"

    def local_path(self, name: str, version: int) -> Path | None:
        return None

    def model_names(self) -> list[str]:
        names = self._s3.common_prefixes(self.prefix)
        return sorted(n for n in names if is_valid_model_name(n) and self.version_numbers(n))

    def version_numbers(self, name: str) -> list[int]:
        found = []
        for key, _modified in self._s3.list_keys(self._key(name, "versions", "")):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if key.endswith(".json") and stem.isdigit() and stem == str(int(stem)) and stem != "0":
                found.append(int(stem))
        return sorted(found)

    # ---- publish -------------------------------------------------------------------------

    def publish(
        self, name: str, prepared: Prepared, before_commit: Callable[[Any], None] | None
    ) -> tuple[int, dict[str, Any]]:
        upload = uuid.uuid4().hex
        contents = {fmt.WEIGHTS_FILE: prepared.weights}
        contents.update({file: extra_bytes(src) for file, src in sorted(prepared.extras.items())})
        for file, data in contents.items():
            self._s3.put(self._key(name, "uploads", upload, file), data)
        listed = {file: fmt.file_entry(data) for file, data in contents.items()}
        if before_commit is not None:
            before_commit(f"s3://{self.bucket}/{self._key(name, 'uploads', upload)}")
        version = max(self.version_numbers(name), default=0) + 1
        for _attempt in range(_MAX_NUMBER_ATTEMPTS):
            manifest = {**prepared.manifest(name, version, listed), "upload": upload}
            body = fmt.encode_manifest(manifest)
            try:
                self._s3.put(
                    self._key(name, "versions", f"{version}.json"), body, if_none_match=True,
                    metadata={_SHA256_META: sha256_bytes(body)},
                )  # fmt: skip
            except Precondition:
                version += 1  # another publisher committed this number first
                continue
            self._touch_state(name)
            return version, json.loads(body)
        raise RegistryError(f"could not claim a version number of {name!r} in {self.location}")

    # ---- read ----------------------------------------------------------------------------

    def read_manifest(self, name: str, version: int) -> dict[str, Any]:
        where = self.version_location(name, version)
        try:
            body, _etag, metadata = self._s3.get(self._key(name, "versions", f"{version}.json"))
        except Missing:
            raise NotFoundError(
                f"model {name!r} has no version {version} in {self.location}"
            ) from None
        if metadata.get(_SHA256_META) != sha256_bytes(body):
            raise IntegrityError(f"{where}: sha256 does not match its recorded checksum")
        try:
            manifest = json.loads(body)
        except ValueError as err:
            raise IntegrityError(f"{where}: not valid JSON ({err})") from err
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise IntegrityError(f"{where}: not a registry manifest (no 'files' table)")
        if not _UPLOAD_ID.fullmatch(str(manifest.get("upload"))):
            raise IntegrityError(f"{where}: no valid 'upload' id")
        return manifest

    def read_file(self, name: str, version: int, manifest: Mapping[str, Any], file: str) -> bytes:
        key = self._key(name, "uploads", str(manifest["upload"]), validate_file_name(file))
        entry = manifest["files"][file]
        digest = entry.get("sha256") if isinstance(entry, Mapping) else None
        if self._cache is not None and isinstance(digest, str):
            cached = self._cache.get(digest)
            if cached is not None:
                return cached
        try:
            data = self._s3.get(key)[0]
        except Missing:
            raise IntegrityError(
                f"s3://{self.bucket}/{key}: listed in the manifest but missing"
            ) from None
        if self._cache is not None and isinstance(digest, str):
            self._cache.put(digest, data)  # stores only bytes whose sha256 is ``digest``
        return data

    # ---- aliases -------------------------------------------------------------------------

    def read_alias(self, name: str, alias: str) -> tuple[dict[str, Any], str] | None:
        key = self._key(name, alias_records.ALIASES_DIR, f"{alias}.json")
        try:
            body, etag, _metadata = self._s3.get(key)
        except Missing:
            return None
        return alias_records.decode_alias(body, f"s3://{self.bucket}/{key}"), etag

    def read_aliases(self, name: str) -> dict[str, dict[str, Any]]:
        records = {}
        for key, _modified in self._s3.list_keys(self._key(name, alias_records.ALIASES_DIR, "")):
            alias = key.rsplit("/", 1)[-1].removesuffix(".json")
            if key.endswith(".json") and is_valid_model_name(alias):
                found = self.read_alias(name, alias)
                if found is not None:
                    records[alias] = found[0]
        return records

    def write_alias(
        self, name: str, alias: str, data: bytes, *, etag: str | None, target: int
    ) -> bool:
        if not self._s3.exists(self._key(name, "versions", f"{target}.json")):
            raise NotFoundError(f"model {name!r} has no version {target} (deleted?)")
        key = self._key(name, alias_records.ALIASES_DIR, f"{alias}.json")
        try:
            self._s3.put(key, data, if_none_match=etag is None, if_match=etag)
        except Precondition:
            return False
        self._touch_state(name)
        return True

    # ---- gc and polling ------------------------------------------------------------------

    def collect_garbage(self, name: str, keep: int) -> list[int]:
        """Manifests go first (the version vanishes at once), then their uploads.

        Object storage has no lock: gc is safe against publishers (their numbers only grow and
        it keeps the newest) and readers, but a promotion to an old version racing with gc can
        point at a deleted one; run gc from one place (the CronJob), as docs/registry.md says.
        """
        versions = self.version_numbers(name)
        protected = set(versions[-keep:]) | alias_records.protected_versions(
            self.read_aliases(name), set(versions)
        )
        deleted, freed = [], set()
        for version in versions:
            if version in protected:
                continue
            # A manifest that does not verify: its upload goes as an orphan once old enough.
            with contextlib.suppress(IntegrityError):
                freed.add(str(self.read_manifest(name, version)["upload"]))
            self._s3.delete([self._key(name, "versions", f"{version}.json")])
            deleted.append(version)
        self._remove_uploads(name, freed)
        self._touch_state(name)
        return deleted

    def _remove_uploads(self, name: str, freed: set[str]) -> None:
        """Delete uploads no manifest names: at once if a deleted version owned them, else when
        older than ORPHAN_GRACE_S (a live publisher may be about to commit them)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=ORPHAN_GRACE_S)
        committed: set[str] = set()
        for version in self.version_numbers(name):  # a publish may have committed meanwhile
            try:
                committed.add(str(self.read_manifest(name, version)["upload"]))
            except (IntegrityError, NotFoundError):
                continue
        doomed = []
        for key, modified in self._s3.list_keys(self._key(name, "uploads", "")):
            upload = key.split("/")[-2]
            if upload not in committed and (upload in freed or modified < cutoff):
                doomed.append(key)
        self._s3.delete(doomed)

    def _touch_state(self, name: str) -> None:
        stamp = {"changed_at": datetime.now(UTC).isoformat(), "nonce": uuid.uuid4().hex}
        self._s3.put(self._key(name, "state"), json.dumps(stamp).encode())

    def state_token(self, name: str) -> str:
        """One conditional GET: 304 (nothing changed) returns the token of the last change."""
        seen = self._state.get(name)
        try:
            _body, etag, _metadata = self._s3.get(
                self._key(name, "state"), if_none_match=None if seen is None else seen[0]
            )
        except NotModified:
            assert seen is not None
            return seen[1]
        except Missing:
            return "state=none"
        token = f"state={etag}"
        self._state[name] = (etag, token)
        return token

"""Where a prediction log's closed files go: the local directory itself, or an S3 prefix.

With ``s3://bucket/prefix`` the writer spools its current file in a local directory; each file
is uploaded once it is closed (rotated, or at shutdown) under ``prefix/<file name>``, create-only
(If-None-Match: *), and deleted locally once stored. A failed upload leaves the file in the
spool, retried after the next rotation (and at the next start). Endpoint and credentials come
from the standard AWS variables, as for the registry (registry/s3_client.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from registry.s3 import parse_url
from registry.s3_client import Precondition, S3Client

__all__ = ["S3LogStore"]


class S3LogStore:
    """The closed log files under ``s3://bucket/prefix`` (InvalidNameError for a bad URL)."""

    def __init__(self, url: str) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.location = self.location_of(url)
        self._s3 = S3Client(self.bucket, self.location)

    @staticmethod
    def location_of(url: str) -> str:
        """``s3://bucket/prefix`` normalised (InvalidNameError for a bad URL), without a client."""
        bucket, prefix = parse_url(url)
        return f"s3://{bucket}/{prefix}".rstrip("/")

    def upload(self, path: Path) -> None:
        """Store a closed file under its name (already stored: done); StoreUnavailableError."""
        # Precondition: uploaded before a crash kept the local copy; nothing to do.
        with contextlib.suppress(Precondition):
            self._s3.put(self.prefix + path.name, path.read_bytes(), if_none_match=True)

    def files(self, glob_prefix: str) -> list[str]:
        """Names of the stored files starting with ``glob_prefix``, oldest (by name) first."""
        keys = self._s3.list_keys(self.prefix + glob_prefix)
        return sorted(key[len(self.prefix) :] for key, _ in keys)

    def read(self, name: str) -> bytes:
        return self._s3.get(self.prefix + name)[0]

    def chunks(self, name: str) -> Iterator[bytes]:
        yield self.read(name)

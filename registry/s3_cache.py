"""BlobCache: a local read-through cache of object-store files, keyed and checked by sha256.

A restarted server reads verified versions from here instead of downloading them again. Only
bytes whose sha256 equals their name are stored, and every read checks it again, so a damaged
cache file is dropped and fetched anew, never served.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path

from registry.files import sha256_bytes

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class BlobCache:
    """Files named by their sha256 under ``directory`` (created on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, digest: str) -> Path | None:
        return self.directory / digest if _DIGEST.fullmatch(digest) else None

    def get(self, digest: str) -> bytes | None:
        """The cached bytes of ``digest``, or None (missing, damaged or unreadable)."""
        path = self._path(digest)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if sha256_bytes(data) != digest:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data`` if its sha256 is ``digest``; a cache that cannot be written is skipped."""
        path = self._path(digest)
        if path is None or sha256_bytes(data) != digest:
            return
        temporary = self.directory / f".tmp-{uuid.uuid4().hex}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()

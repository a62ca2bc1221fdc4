"""Recognise dataset files by content: the sha256 of the IDX bytes, whatever the gzip encoding.

A user's copy of MNIST may be the mirrors' gzip files, the same data re-compressed
(``gzip -9 -n`` gives other bytes), or unpacked IDX files, sometimes with the dotted names
that common unpackers write (``t10k-images.idx3-ubyte``). All of them are the same dataset, so
a file is accepted when the sha256 of its decompressed IDX bytes is the known one, or when the
file's own bytes have the known (download) sha256. Nothing here writes or deletes a file.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from core.idx import MAX_BYTES

__all__ = ["Found", "MnistFile", "candidate_names", "describe", "identify", "sha256_of"]

_CHUNK_BYTES = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}


@dataclass(frozen=True)
class MnistFile:
    """One file of the dataset.

    ``name``: its name on the mirrors; ``sha256``: of those (gzip) bytes; ``size``: their
    length in bytes (None: unknown); ``idx_sha256``: of the decompressed IDX bytes (None: only
    ``sha256`` is known, and it may then be either kind); ``shape``: the IDX shape, for messages.
    """

    name: str
    sha256: str
    size: int | None = None
    idx_sha256: str | None = None
    shape: tuple[int, ...] | None = None

    def accepts(self, found: Found) -> bool:
        """True when ``found`` holds this file's data, compressed or not."""
        wanted = {self.sha256, self.idx_sha256 or self.sha256}
        return found.sha256 in wanted or found.idx_sha256 in wanted


@dataclass(frozen=True)
class Found:
    """What a file on disk holds: sha256 of its bytes and of its IDX content, and its header.

    ``idx_sha256`` is None when the file is not readable gzip; ``header`` is a short text such
    as "IDX uint8 (60000, 28, 28)" or why it is not an IDX file.
    """

    path: Path
    sha256: str
    idx_sha256: str | None
    header: str


def candidate_names(name: str) -> tuple[str, ...]:
    """The file names a copy of ``name`` may have: gzip or unpacked, dashed or dotted.

    ``train-images-idx3-ubyte.gz`` -> itself, ``train-images-idx3-ubyte``,
    ``train-images.idx3-ubyte`` and ``train-images.idx3-ubyte.gz``.
    """
    stem = name.removesuffix(".gz")
    dotted = re.sub(r"-(idx\d-ubyte)$", r".\1", stem)
    names = [name, stem, dotted, dotted + ".gz"]
    return tuple(dict.fromkeys(names))  # unique, in order of preference


def identify(path: Path, max_bytes: int = MAX_BYTES) -> Found:
    """Hash ``path`` as stored and as IDX content (gunzipped when gzip), in one streaming pass.

    Decompression stops after ``max_bytes`` (a zip bomb is reported, not inflated). Raises
    OSError when the file cannot be read.
    """
    raw = sha256_of(path)
    with path.open("rb") as handle:
        head = handle.read(260)
    if head[:2] != _GZIP_MAGIC:
        return Found(path, raw, raw, _header(head))
    content = hashlib.sha256()
    first = b""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
                first = first or chunk[:260]
                total += len(chunk)
                if total > max_bytes:
                    return Found(path, raw, None, f"gzip of over {max_bytes} bytes")
                content.update(chunk)
    except (OSError, EOFError) as err:
        return Found(path, raw, None, f"corrupt gzip ({err})")
    return Found(path, raw, content.hexdigest(), "gzip of " + _header(first))


def sha256_of(path: Path) -> str:
    """The sha256 of the file's bytes as stored (hex). Raises OSError when unreadable."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _header(data: bytes) -> str:
    """'IDX uint8 (60000, 28, 28)' from the first bytes, or what else they look like."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES:
        return "not an IDX file (first bytes " + (data[:4].hex() or "none, empty file") + ")"
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        return "an IDX file with a broken header"
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return f"IDX {_IDX_TYPES[data[2]]} {shape}"


def describe(found: Found, spec: MnistFile) -> str:
    """One clause saying what ``found`` is and what ``spec`` wants, for a log line or error."""
    wanted = f"IDX uint8 {spec.shape}" if spec.shape else "the file"
    digest = spec.idx_sha256 or spec.sha256
    got = found.idx_sha256 or found.sha256
    if not got:  # could not be read at all
        return f"{found.path} is {found.header}, not MNIST's {spec.name} ({wanted})"
    return (
        f"{found.path} holds {found.header} with content sha256 {got[:12]}…, "
        f"not MNIST's {spec.name} ({wanted}, content sha256 {digest[:12]}…)"
    )

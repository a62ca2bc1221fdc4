"""MNIST download: fetch the four canonical files from a list of mirrors into a verified cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.mirrors import DEFAULT_MIRRORS

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_FILES",
    "DownloadError",
    "MnistFile",
    "default_cache_dir",
    "ensure_mnist",
    "remove_stale_parts",
    "sha256_of",
]

_CHUNK_BYTES = 1 << 16
_LOG_EVERY_FRACTION = 0.25  # progress lines at 25 %, 50 %, 75 %, 100 % of a large file
_LARGE_FILE_BYTES = 1 << 20  # smaller files get one line when done, not a progress report

Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class MnistFile:
    """One file of the dataset: its name on the mirrors, sha256 and size (None: unknown)."""

    name: str
    sha256: str
    size: int | None = None


# Byte-identical to the files served by the public mirrors (see docs/pipeline.md).
MNIST_FILES: tuple[MnistFile, ...] = (
    MnistFile(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9912422,
    ),
    MnistFile(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28881,
    ),
    MnistFile(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1648877,
    ),
    MnistFile(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
    ),
)


class DownloadError(OSError):
    """No mirror delivered a verified file (or offline mode lacks one); lists what was tried.

    ``transient`` is True when at least one failure might go away on a later attempt
    (connection error, timeout, 5xx), so a caller may schedule a retry much later.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class _Attempts:
    """What was tried for one file: (url, reason) pairs, in order."""

    failures: list[tuple[str, str]] = field(default_factory=list)
    transient: bool = False


def default_cache_dir() -> Path:
    """The per-user cache directory for the dataset, e.g. ~/.cache/digits/mnist on Linux."""
    import platformdirs  # only the pipeline extra has it

    return Path(platformdirs.user_cache_dir("digits")) / "mnist"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_verified(path: Path, spec: MnistFile) -> bool:
    if not path.is_file():
        return False
    if spec.size is not None and path.stat().st_size != spec.size:
        return False  # cheap check before hashing
    return sha256_of(path) == spec.sha256


def ensure_mnist(
    cache_dir: Path,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    *,
    offline: bool = False,
    files: Sequence[MnistFile] = MNIST_FILES,
    retries: int = 3,
    base_delay_s: float = 1.0,
    timeout_s: float = 30.0,
    logger: Logger | None = None,
) -> dict[str, Path]:
    """Make sure every file is in ``cache_dir`` and verified; return name -> path.

    Verified files already present are used without any request. A file whose sha256 does not
    match is deleted and the next mirror is tried. Transient errors (connection errors,
    timeouts, HTTP 5xx) are retried ``retries`` times per mirror with exponential back-off
    starting at ``base_delay_s``. Raises DownloadError listing every URL tried and why.
    """
    log = logger or logging.getLogger(__name__)
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(cache_dir, log)
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for spec in files:
        path = cache_dir / spec.name
        if _is_verified(path, spec):
            log.info("%s: cached and verified (%s)", spec.name, path)
            paths[spec.name] = path
            continue
        if path.exists():
            log.warning("%s: cached copy fails verification; deleting it", spec.name)
            path.unlink()
        if offline:
            missing.append(spec.name)
            continue
        paths[spec.name] = _download_one(spec, path, mirrors, retries, base_delay_s, timeout_s, log)
    if missing:
        raise DownloadError(
            f"offline mode: {len(missing)} file(s) missing from cache {cache_dir}: "
            + ", ".join(missing)
        )
    return paths


def remove_stale_parts(cache_dir: Path, log: Logger | None = None) -> list[Path]:
    """Delete ``.*.part`` files no live download holds (left by a SIGKILL); return them.

    A download holds an flock on its part file for its whole life and the kernel drops it when
    the process dies, so a part file we can lock belongs to nobody.
    """
    removed = []
    for part in cache_dir.glob(".*.part"):
        try:
            fd = os.open(part, os.O_RDONLY)
        except FileNotFoundError:
            continue  # finished or cleaned up meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live download in another process
        else:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            removed.append(part)
        finally:
            os.close(fd)
    if removed and log is not None:
        log.info("removed %d stale partial download(s) from %s", len(removed), cache_dir)
    return removed


def _download_one(
    spec: MnistFile,
    path: Path,
    mirrors: Sequence[str],
    retries: int,
    base_delay_s: float,
    timeout_s: float,
    log: Logger,
) -> Path:
    attempts = _Attempts()
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + spec.name
        if _fetch_with_retries(url, spec, path, attempts, retries, base_delay_s, timeout_s, log):
            return path
    tried = "; ".join(f"{url} ({reason})" for url, reason in attempts.failures) or "no mirrors"
    raise DownloadError(f"could not download {spec.name}: tried {tried}", attempts.transient)


def _fetch_with_retries(
    url: str,
    spec: MnistFile,
    path: Path,
    attempts: _Attempts,
    retries: int,
    base_delay_s: float,
    timeout_s: float,
    log: Logger,
) -> bool:
    """Try one URL up to 1 + retries times; True when ``path`` now holds the verified file."""
    for attempt in range(retries + 1):
        try:
            digest = _stream_to(url, path, spec, timeout_s, log)
        except urllib.error.HTTPError as err:
            reason, transient = f"HTTP {err.code}", err.code >= 500 or err.code == 429
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = str(getattr(err, "reason", err)) or type(err).__name__
            transient = not isinstance(getattr(err, "reason", None), FileNotFoundError)
        else:
            if digest == spec.sha256:
                log.info("%s: downloaded and verified from %s", spec.name, url)
                return True
            log.warning("%s: sha256 mismatch from %s; trying the next mirror", spec.name, url)
            attempts.failures.append((url, f"sha256 mismatch: got {digest[:12]}…"))
            return False
        if not transient or attempt == retries:
            log.warning("%s: %s failed: %s", spec.name, url, reason)
            attempts.failures.append((url, reason))
            attempts.transient = attempts.transient or transient
            return False
        delay = base_delay_s * 2**attempt
        log.warning("%s: %s failed (%s); retry in %.1f s", spec.name, url, reason, delay)
        time.sleep(delay)
    return False


def _stream_to(url: str, path: Path, spec: MnistFile, timeout_s: float, log: Logger) -> str:
    """Stream ``url`` into a temporary file beside ``path``; return the sha256 of what came.

    The file is renamed to ``path`` only when that sha256 is the expected one.
    """
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "digits-pipeline"})
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{spec.name}.", suffix=".part")
    fcntl.flock(fd, fcntl.LOCK_EX)  # tells remove_stale_parts this part file is alive
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=timeout_s) as response,
        ):
            announced = _content_length(response.headers)
            total = announced or spec.size
            done, next_report = 0, _LOG_EVERY_FRACTION
            for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if total and total >= _LARGE_FILE_BYTES and done / total >= next_report:
                    log.info(
                        "%s: %.1f/%.1f MB (%d%%)",
                        spec.name,
                        done / 1e6,
                        total / 1e6,
                        100 * done // total,
                    )
                    next_report += _LOG_EVERY_FRACTION
            if announced is not None and done < announced:
                # http.client returns a short body without raising when the peer hangs up.
                raise ConnectionError(f"connection closed after {done} of {announced} bytes")
        if digest.hexdigest() == spec.sha256:
            os.replace(tmp_name, path)  # atomic, and only ever for a verified file
        else:
            Path(tmp_name).unlink()
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _content_length(headers: Mapping[str, str]) -> int | None:
    length = headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None

"""MNIST download: find the four files in a data directory or fetch them from mirrors.

The data directory may hold a user's own copy (gzip or unpacked, any gzip encoding, dashed or
dotted names); such files are read, never changed: they are accepted when their IDX content
is MNIST's (pipeline.verify), and reported, not deleted, when it is not. Whatever the pipeline
downloads goes into its own sub-directory ``downloaded/`` (DOWNLOADS_DIR), the only place it
writes, and only by renaming a verified temporary file into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.mirrors import DEFAULT_MIRRORS
from pipeline.settings import TrainSettings
from pipeline.transfer import Limits, TooSlow, stream_to_temp
from pipeline.verify import Found, MnistFile, candidate_names, describe, identify, sha256_of

__all__ = [
    "DEFAULT_MIRRORS",
    "DOWNLOADS_DIR",
    "MNIST_FILES",
    "DownloadError",
    "Limits",
    "MnistFile",
    "default_cache_dir",
    "download_limits",
    "ensure_mnist",
    "remove_stale_parts",
    "sha256_of",
]

DOWNLOADS_DIR = "downloaded"  # the pipeline's own sub-directory of the data directory
_HOW_TO_FIX = (
    "to train without these mirrors, pass --mirror file:///path/to/dir/ (a directory with the "
    "four MNIST files) or put them in a directory and pass --offline --data-dir DIR"
)

Logger = logging.Logger | logging.LoggerAdapter[Any]

# ``sha256``/``size``: the gzip files the public mirrors serve (see docs/pipeline.md);
# ``idx_sha256``: their decompressed IDX bytes, the same whatever gzip encoding a copy has.
MNIST_FILES: tuple[MnistFile, ...] = (
    MnistFile(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9912422,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        (60000, 28, 28),
    ),
    MnistFile(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28881,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        (60000,),
    ),
    MnistFile(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1648877,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        (10000, 28, 28),
    ),
    MnistFile(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        (10000,),
    ),
)


class DownloadError(OSError):
    """No mirror delivered a verified file (or offline mode lacks one); lists what was tried.

    ``transient`` is True when at least one failure might go away on a later attempt
    (connection error, timeout, slow mirror, 5xx), so a caller may schedule a retry much later.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class _Attempts:
    """What was tried for one file: (url, reason) pairs, in order."""

    failures: list[tuple[str, str]] = field(default_factory=list)
    transient: bool = False
    slow: set[str] = field(default_factory=set)  # URLs that crossed a bound of the Limits


@dataclass
class _Run:
    """One ensure_mnist call: where to write, the bounds, and mirrors found slow so far."""

    downloads: Path
    retries: int
    base_delay_s: float
    limits: Limits
    log: Logger
    slow: set[str] = field(default_factory=set)

    def ordered(self, mirrors: Sequence[str]) -> list[str]:
        """Mirrors in the given order, those already found slow last (tried only if needed)."""
        return sorted(mirrors, key=lambda mirror: mirror in self.slow)


def default_cache_dir() -> Path:
    """The per-user cache directory for the dataset, e.g. ~/.cache/digits/mnist on Linux."""
    import platformdirs  # only the pipeline extra has it

    return Path(platformdirs.user_cache_dir("digits")) / "mnist"


def ensure_mnist(
    cache_dir: Path,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    *,
    offline: bool = False,
    files: Sequence[MnistFile] = MNIST_FILES,
    retries: int = 3,
    base_delay_s: float = 1.0,
    limits: Limits | None = None,
    logger: Logger | None = None,
) -> dict[str, Path]:
    """Find or fetch every file; return canonical name -> path of a verified copy.

    A copy in ``cache_dir`` (any name of verify.candidate_names) or in its ``downloaded/``
    sub-directory is used without any request when its content verifies. Other files are never
    touched: they are reported and the file is downloaded into ``cache_dir/downloaded/``.
    Transient errors (connection refused or reset, HTTP 5xx/429) are retried ``retries`` times
    per mirror with exponential back-off from ``base_delay_s``; a mirror that crosses a bound of
    ``limits`` (deadline, minimum rate; default: the settings') is left at once for the next
    one, and tried last for the remaining files; 404s and DNS failures are not retried.
    Raises DownloadError (one line: every URL tried, why, and what to do instead).
    """
    log = logger or logging.getLogger(__name__)
    run = _Run(cache_dir / DOWNLOADS_DIR, retries, base_delay_s, limits or download_limits(), log)
    remove_stale_parts(run.downloads, log)
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for spec in files:
        found, rejected = _find_verified(cache_dir, run.downloads, spec)
        for other in rejected:
            ours = other.path.parent == run.downloads  # an earlier download of ours: replaced
            fate = "downloading it again" if ours else "left untouched"
            log.warning("%s: %s; %s", spec.name, describe(other, spec), fate)
        if found is not None:
            log.info("%s: found and verified (%s)", spec.name, found)
            paths[spec.name] = found
        elif offline:
            missing.append(_offline_problem(spec, rejected))
        else:
            paths[spec.name] = _download_one(spec, mirrors, run)
    if missing:
        raise DownloadError(
            f"offline mode: MNIST is not in {cache_dir}: " + "; ".join(missing) + ". Put the "
            "four MNIST files there (gzip or unpacked) or drop --offline to download them"
        )
    return paths


def remove_stale_parts(directory: Path, log: Logger | None = None) -> list[Path]:
    """Delete ``.*.part`` files no live download holds (left by a SIGKILL); return them.

    A download holds an flock on its part file for its whole life (transfer.stream_to_temp) and
    the kernel drops it when the process dies, so a part file we can lock belongs to nobody.
    """
    removed = []
    for part in directory.glob(".*.part") if directory.is_dir() else ():
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
        log.info("removed %d stale partial download(s) from %s", len(removed), directory)
    return removed


def download_limits(settings: TrainSettings | None = None) -> Limits:
    """The download bounds of ``settings`` (None: the defaults, or $DIGITS_DOWNLOAD_*)."""
    settings = settings or TrainSettings()
    return Limits(
        settings.download_deadline_s, settings.download_min_rate, settings.download_rate_window_s
    )


def _find_verified(
    cache_dir: Path, downloads: Path, spec: MnistFile
) -> tuple[Path | None, list[Found]]:
    """The first copy of ``spec`` whose content verifies, and the copies that did not."""
    rejected: list[Found] = []
    for directory in (cache_dir, downloads):
        for name in candidate_names(spec.name):
            path = directory / name
            if not path.is_file():
                continue
            try:
                found = identify(path)
            except OSError as err:
                rejected.append(Found(path, "", None, f"an unreadable file ({err})"))
                continue
            if spec.accepts(found):
                return path, rejected
            rejected.append(found)
    return None, rejected


def _offline_problem(spec: MnistFile, rejected: list[Found]) -> str:
    if not rejected:
        names = " or ".join(candidate_names(spec.name))
        return f"{spec.name} missing (looked for {names})"
    return f"{spec.name}: " + ", ".join(describe(found, spec) for found in rejected)


def _download_one(spec: MnistFile, mirrors: Sequence[str], run: _Run) -> Path:
    attempts = _Attempts()
    run.downloads.mkdir(parents=True, exist_ok=True)
    for mirror in run.ordered(mirrors):
        name = _source_name(mirror, spec)
        url = mirror.rstrip("/") + "/" + name
        if _fetch_with_retries(url, name, spec, attempts, run):
            return run.downloads / name
        if url in attempts.slow:
            run.slow.add(mirror)
    tried = "; ".join(f"{url} ({reason})" for url, reason in attempts.failures) or "no mirrors"
    raise DownloadError(
        f"could not download {spec.name}: tried {tried}; {_HOW_TO_FIX}", attempts.transient
    )


def _source_name(mirror: str, spec: MnistFile) -> str:
    """The name to fetch: for a file:// mirror (a local directory) the first of the file's
    candidate names present there, so an unpacked or dotted copy works too; else the
    mirrors' name."""
    if mirror.startswith("file://"):
        directory = Path(urllib.request.url2pathname(urllib.parse.urlparse(mirror).path))
        for name in candidate_names(spec.name):
            if (directory / name).is_file():
                return name
    return spec.name


def _classify(err: BaseException) -> tuple[str, bool, bool]:
    """(reason, worth retrying on this mirror, might work on a later run) for a failure."""
    if isinstance(err, TooSlow):
        return str(err), False, True  # next mirror now; the mirror may be fast again later
    if isinstance(err, urllib.error.HTTPError):
        transient = err.code >= 500 or err.code == 429
        return f"HTTP {err.code}", transient, transient
    reason = getattr(err, "reason", err)
    if isinstance(reason, socket.gaierror):
        # Name resolution fails the same way on every try (offline machine, typo in --mirror).
        return f"cannot resolve host ({reason.strerror or reason})", False, False
    if isinstance(reason, FileNotFoundError):
        return f"no such file ({reason.filename or reason})", False, False
    return str(reason) or type(err).__name__, True, True


def _fetch_with_retries(
    url: str, name: str, spec: MnistFile, attempts: _Attempts, run: _Run
) -> bool:
    """Try one URL up to 1 + retries times; True when the verified file is now downloaded/name."""
    for attempt in range(run.retries + 1):
        try:
            tmp, digest = stream_to_temp(url, run.downloads, name, spec.size, run.limits, run.log)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason, retry, transient = _classify(err)
            if isinstance(err, TooSlow):
                attempts.slow.add(url)
        else:
            if _keep_if_verified(tmp, digest, spec, name):
                run.log.info("%s: downloaded and verified from %s", spec.name, url)
                return True
            run.log.warning("%s: sha256 mismatch from %s; trying the next mirror", spec.name, url)
            attempts.failures.append((url, f"sha256 mismatch: got {digest[:12]}…"))
            return False
        if not retry or attempt == run.retries:
            run.log.warning("%s: %s failed: %s", spec.name, url, reason)
            attempts.failures.append((url, reason))
            attempts.transient = attempts.transient or transient
            return False
        delay = run.base_delay_s * 2**attempt
        run.log.warning("%s: %s failed (%s); retry in %.1f s", spec.name, url, reason, delay)
        time.sleep(delay)
    return False


def _keep_if_verified(tmp: Path, digest: str, spec: MnistFile, name: str) -> bool:
    """Rename the temporary file into downloaded/ when its bytes or content verify, else drop it.

    Only the pipeline's own sub-directory is written, so this never replaces a user's file.
    """
    try:
        if digest == spec.sha256 or spec.accepts(identify(tmp)):
            os.replace(tmp, tmp.parent / name)  # atomic
            return True
        return False
    finally:
        tmp.unlink(missing_ok=True)

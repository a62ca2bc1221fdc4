"""One HTTP(S)/file download into a temporary file, bounded in time and in transfer rate.

A per-read socket timeout alone never ends a transfer that trickles (a mirror sending one byte
every few seconds resets it on every byte), so every transfer also has an overall deadline and
a minimum rate averaged over a window; crossing either raises TooSlow, which the caller treats
as "try the next mirror", not "retry this one".
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Limits", "TooSlow", "stream_to_temp"]

_CHUNK_BYTES = 1 << 16
_LOG_EVERY_FRACTION = 0.25  # progress lines at 25 %, 50 %, 75 %, 100 % of a large file
_LARGE_FILE_BYTES = 1 << 20  # smaller files get one line when done, not a progress report

Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class Limits:
    """Bounds on one attempt to fetch one file from one mirror.

    ``deadline_s``: seconds from the request to the last byte; ``min_rate``: bytes per second
    that the transfer must average over every ``window_s`` seconds (also the longest wait for
    the response headers or for any single read, so a silent mirror is left after ``window_s``).
    The defaults are declared once, in pipeline.settings.TrainSettings (``download_*``).
    """

    deadline_s: float
    min_rate: float
    window_s: float


class TooSlow(OSError):
    """The transfer crossed its deadline or fell below the minimum rate (or went silent)."""


@dataclass
class _Meter:
    """Bytes received, against the deadline and the rate window (time.monotonic seconds)."""

    limits: Limits
    start: float
    window_start: float
    window_bytes: int = 0
    done: int = 0

    def add(self, count: int, total: int | None) -> None:
        """Count ``count`` new bytes; raise TooSlow when a bound is crossed."""
        now = time.monotonic()
        self.done += count
        self.window_bytes += count
        of = f" of {total}" if total else ""
        if now - self.start > self.limits.deadline_s:
            raise TooSlow(
                f"too slow: deadline of {self.limits.deadline_s:g} s passed "
                f"after {self.done}{of} bytes"
            )
        elapsed = now - self.window_start
        if elapsed >= self.limits.window_s:
            rate = self.window_bytes / elapsed
            if rate < self.limits.min_rate:
                raise TooSlow(
                    f"too slow: {rate:.3g} B/s over {elapsed:.0f} s, below the minimum of "
                    f"{self.limits.min_rate:g} B/s ({self.done}{of} bytes received)"
                )
            self.window_start, self.window_bytes = now, 0


def stream_to_temp(
    url: str, directory: Path, name: str, size_hint: int | None, limits: Limits, log: Logger
) -> tuple[Path, str]:
    """Fetch ``url`` into a new hidden temporary file in ``directory``; return it and its sha256.

    The caller owns the temporary file (renames or deletes it). Raises TooSlow when a bound of
    ``limits`` is crossed, urllib.error.URLError / http.client.HTTPException / OSError for the
    rest (HTTPError for a non-2xx status), ConnectionError for a body shorter than announced;
    the temporary file is removed on any error.
    """
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "digits-pipeline"})
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    fcntl.flock(fd, fcntl.LOCK_EX)  # download.remove_stale_parts: this part file is alive
    # No single wait may outlast the rate window or the deadline.
    timeout = min(limits.window_s, limits.deadline_s)
    start = time.monotonic()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except TimeoutError as err:  # headers never came (urllib wraps only connect errors)
                raise TooSlow(f"too slow: no response within {timeout:g} s") from err
            except urllib.error.URLError as err:
                if isinstance(err.reason, TimeoutError):
                    raise TooSlow(f"too slow: no connection within {timeout:g} s") from err
                raise
            with response:
                announced = _content_length(response.headers)
                meter = _Meter(limits, start, time.monotonic())
                _copy(response, out, digest, meter, announced or size_hint, name, log)
            if announced is not None and meter.done < announced:
                # http.client returns a short body without raising when the peer hangs up.
                raise ConnectionError(f"connection closed after {meter.done} of {announced} bytes")
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Path(tmp_name), digest.hexdigest()


def _copy(
    response: Any,
    out: Any,
    digest: Any,
    meter: _Meter,
    total: int | None,
    name: str,
    log: Logger,
) -> None:
    """Copy the body chunk by chunk, metering every read and logging progress of big files."""
    next_report = _LOG_EVERY_FRACTION
    while True:
        try:
            # read1: whatever one read brings; read(n) would wait for n bytes, byte by byte.
            chunk = response.read1(_CHUNK_BYTES)
        except TimeoutError as err:  # the read timeout set at urlopen: window, capped by deadline
            waited = min(meter.limits.window_s, meter.limits.deadline_s)
            raise TooSlow(f"too slow: no data for {waited:g} s after {meter.done} bytes") from err
        if not chunk:
            return
        out.write(chunk)
        digest.update(chunk)
        meter.add(len(chunk), total)
        if total and total >= _LARGE_FILE_BYTES and meter.done / total >= next_report:
            done = meter.done
            log.info("%s: %.1f/%.1f MB (%d%%)", name, done / 1e6, total / 1e6, 100 * done // total)
            next_report += _LOG_EVERY_FRACTION


def _content_length(headers: Mapping[str, str]) -> int | None:
    length = headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None

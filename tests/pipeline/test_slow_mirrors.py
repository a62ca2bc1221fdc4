"""Downloads end in bounded time: stalling and trickling mirrors on 127.0.0.1 are left in time."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from pipeline.download import DOWNLOADS_DIR, DownloadError, Limits, MnistFile, ensure_mnist
from pipeline.settings import TrainSettings
from pipeline.verify import sha256_of

pytestmark = pytest.mark.integration

Files = tuple[Path, tuple[MnistFile, ...]]
# Small bounds keep the tests fast; the defaults are 600 s, 10 kB/s and 20 s.
LIMITS = Limits(deadline_s=3.0, min_rate=1000.0, window_s=0.6)


def _timed(cache: Path, mirrors: list[str], specs: tuple[MnistFile, ...], **kw: object):
    start = time.monotonic()
    paths = ensure_mnist(cache, mirrors, files=specs, base_delay_s=0.0, **kw)
    return paths, time.monotonic() - start


def test_headers_then_silence_falls_back_after_one_window(
    tmp_path: Path, small_files: Files, mirror_factory, caplog
):
    root, specs = small_files
    stalling, good = mirror_factory(root), mirror_factory(root)
    stalling.script(specs[0].name, "stall")
    with caplog.at_level(logging.WARNING):
        paths, seconds = _timed(tmp_path, [stalling.url, good.url], specs[:1], limits=LIMITS)
    assert sha256_of(paths[specs[0].name]) == specs[0].sha256
    assert stalling.requests[specs[0].name] == 1  # a slow mirror is not retried
    assert seconds < LIMITS.window_s + 1.5
    assert "too slow: no data for 0.6 s" in caplog.text


def test_one_byte_at_a_time_is_left_at_the_minimum_rate(
    tmp_path: Path, small_files: Files, mirror_factory, caplog
):
    root, specs = small_files
    dripping, good = mirror_factory(root), mirror_factory(root)
    dripping.drip_interval_s = 0.1  # 10 B/s against a minimum of 1000 B/s
    dripping.script(specs[0].name, "drip")
    with caplog.at_level(logging.WARNING):
        paths, seconds = _timed(tmp_path, [dripping.url, good.url], specs[:1], limits=LIMITS)
    assert sha256_of(paths[specs[0].name]) == specs[0].sha256
    assert seconds < LIMITS.window_s + 1.5
    assert "below the minimum of 1000 B/s" in caplog.text


def test_overall_deadline_ends_a_transfer_that_keeps_the_rate(
    tmp_path: Path, small_files: Files, mirror_factory, caplog
):
    root, specs = small_files
    dripping, good = mirror_factory(root), mirror_factory(root)
    dripping.drip_interval_s = 0.05  # ~20 B/s: above a 5 B/s minimum, 2048 bytes need ~100 s
    dripping.script(specs[0].name, "drip")
    limits = Limits(deadline_s=1.0, min_rate=5.0, window_s=0.5)
    with caplog.at_level(logging.WARNING):
        paths, seconds = _timed(tmp_path, [dripping.url, good.url], specs[:1], limits=limits)
    assert sha256_of(paths[specs[0].name]) == specs[0].sha256
    assert 1.0 <= seconds < 2.5
    assert "deadline of 1 s passed" in caplog.text


def test_a_slow_mirror_is_tried_last_for_the_remaining_files(
    tmp_path: Path, small_files: Files, mirror_factory
):
    root, specs = small_files
    stalling, good = mirror_factory(root), mirror_factory(root)
    for spec in specs:
        stalling.script(spec.name, "stall")
    paths, seconds = _timed(tmp_path, [stalling.url, good.url], specs, limits=LIMITS)
    assert len(paths) == 4
    assert sum(stalling.requests.values()) == 1  # only the first file waited for it
    assert seconds < LIMITS.window_s + 2.0


def test_every_mirror_slow_is_one_transient_line_saying_what_to_do(
    tmp_path: Path, small_files: Files, mirror_factory
):
    root, specs = small_files
    stalling = mirror_factory(root)
    stalling.script(specs[1].name, "stall")
    with pytest.raises(DownloadError) as err:
        _timed(tmp_path, [stalling.url], specs[1:2], limits=LIMITS)
    message = str(err.value)
    assert "\n" not in message and "too slow" in message
    assert "--mirror file:///" in message and "--offline --data-dir" in message
    assert err.value.transient
    assert not list((tmp_path / DOWNLOADS_DIR).iterdir())  # no partial file left


def test_dns_failure_is_not_retried_and_not_transient(tmp_path: Path, small_files: Files, caplog):
    try:
        socket.getaddrinfo("mirror.invalid", 80)
        pytest.skip("this machine's resolver answers for .invalid names")
    except socket.gaierror:
        pass
    _, specs = small_files
    with caplog.at_level(logging.WARNING), pytest.raises(DownloadError) as err:
        _timed(tmp_path, ["http://mirror.invalid/mnist/"], specs[:1], retries=3, limits=LIMITS)
    assert "cannot resolve host" in str(err.value)
    assert not err.value.transient  # no later retry of the Prefect task either
    assert "retry in" not in caplog.text


def test_limits_are_settings_with_env_fallbacks(monkeypatch: pytest.MonkeyPatch):
    for var in ("DEADLINE_S", "MIN_RATE", "RATE_WINDOW_S", "RETRIES"):
        monkeypatch.delenv(f"DIGITS_DOWNLOAD_{var}", raising=False)
    default = TrainSettings()
    assert (default.download_deadline_s, default.download_min_rate) == (600.0, 10_000.0)
    assert (default.download_rate_window_s, default.download_retries) == (20.0, 3)
    monkeypatch.setenv("DIGITS_DOWNLOAD_DEADLINE_S", "90")
    monkeypatch.setenv("DIGITS_DOWNLOAD_MIN_RATE", "0")
    monkeypatch.setenv("DIGITS_DOWNLOAD_RATE_WINDOW_S", "5")
    monkeypatch.setenv("DIGITS_DOWNLOAD_RETRIES", "1")
    settings = TrainSettings()
    assert settings.download_deadline_s == 90.0 and settings.download_min_rate == 0.0
    assert settings.download_rate_window_s == 5.0 and settings.download_retries == 1
    assert TrainSettings(download_deadline_s=30).download_deadline_s == 30.0
    monkeypatch.setenv("DIGITS_DOWNLOAD_DEADLINE_S", "soon")
    with pytest.raises(ValueError, match="download_deadline_s"):
        TrainSettings()

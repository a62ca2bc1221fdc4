"""Download from real local HTTP mirrors: fallbacks, checksums, retries, cache and offline mode."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
from pathlib import Path

import pytest

from pipeline.download import (
    DOWNLOADS_DIR,
    MNIST_FILES,
    DownloadError,
    Limits,
    MnistFile,
    ensure_mnist,
    remove_stale_parts,
    sha256_of,
)
from tests.helpers.mirror import MirrorServer

pytestmark = pytest.mark.integration

Files = tuple[Path, tuple[MnistFile, ...]]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"  # nothing listens there any more


def _fetch(cache: Path, mirrors: list[str], specs: tuple[MnistFile, ...], **kw: object):
    limits = Limits(deadline_s=5.0, min_rate=0.0, window_s=5.0)
    return ensure_mnist(cache, mirrors, files=specs, base_delay_s=0.0, limits=limits, **kw)


def test_first_mirror_404_then_second_serves(tmp_path: Path, small_files: Files, mirror_factory):
    root, specs = small_files
    empty = tmp_path / "empty"
    empty.mkdir()
    dead, good = mirror_factory(empty), mirror_factory(root)
    paths = _fetch(tmp_path / "cache", [dead.url, good.url], specs)
    for spec in specs:
        assert sha256_of(paths[spec.name]) == spec.sha256
        assert dead.requests[spec.name] == 1  # a 404 is not retried
        assert good.requests[spec.name] == 1
    assert not list((tmp_path / "cache").rglob(".*.part"))  # no temporary files left behind


def test_corrupt_bytes_are_deleted_and_next_mirror_used(
    tmp_path: Path, small_files: Files, mirror_factory
):
    root, specs = small_files
    bad, good = mirror_factory(root), mirror_factory(root)
    name = specs[0].name
    bad.script(name, "corrupt")
    paths = _fetch(tmp_path / "cache", [bad.url, good.url], specs)
    assert sha256_of(paths[name]) == specs[0].sha256
    assert good.requests[name] == 1
    assert good.requests[specs[1].name] == 0  # the other files came from the first mirror


def test_server_error_is_retried_on_the_same_mirror(
    tmp_path: Path, small_files: Files, mirror_factory
):
    root, specs = small_files
    flaky = mirror_factory(root)
    flaky.script(specs[2].name, "500", "500")
    paths = _fetch(tmp_path / "cache", [flaky.url], specs, retries=2)
    assert sha256_of(paths[specs[2].name]) == specs[2].sha256
    assert flaky.requests[specs[2].name] == 3


def test_connection_cut_mid_file_is_retried(tmp_path: Path, small_files: Files, mirror_factory):
    root, specs = small_files
    flaky = mirror_factory(root)
    flaky.script(specs[0].name, "truncate")
    paths = _fetch(tmp_path / "cache", [flaky.url], specs, retries=1)
    assert sha256_of(paths[specs[0].name]) == specs[0].sha256
    assert flaky.requests[specs[0].name] == 2
    assert not list((tmp_path / "cache").rglob(".*.part"))


def test_all_mirrors_failing_names_every_url_and_reason(
    tmp_path: Path, small_files: Files, mirror_factory, caplog
):
    root, specs = small_files
    corrupt = mirror_factory(root)
    corrupt.script(specs[0].name, "corrupt")
    refused = _closed_port_url()
    cache = tmp_path / "cache"
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(DownloadError) as err,
    ):
        _fetch(cache, [corrupt.url, refused], specs, retries=1)
    message = str(err.value)
    assert specs[0].name in message
    assert corrupt.url + specs[0].name in message and "sha256 mismatch" in message
    assert refused + specs[0].name in message
    assert err.value.transient  # a refused connection may work later
    assert not (cache / DOWNLOADS_DIR / specs[0].name).exists()
    assert "retry" in caplog.text
    assert "--mirror file://" in message and "--offline --data-dir" in message


def test_only_404s_are_not_transient(tmp_path: Path, small_files: Files, mirror_factory):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DownloadError) as err:
        _fetch(tmp_path / "cache", [mirror_factory(empty).url], small_files[1])
    assert "HTTP 404" in str(err.value)
    assert not err.value.transient


def test_cache_hit_makes_no_request(tmp_path: Path, small_files: Files, mirror_factory):
    root, specs = small_files
    server = mirror_factory(root)
    cache = tmp_path / "cache"
    _fetch(cache, [server.url], specs)
    before = sum(server.requests.values())
    again = _fetch(cache, [server.url], specs)
    assert sum(server.requests.values()) == before == len(specs)
    assert set(again) == {spec.name for spec in specs}


def test_tampered_download_is_fetched_again(tmp_path: Path, small_files: Files, mirror_factory):
    root, specs = small_files
    server = mirror_factory(root)
    cache = tmp_path / "cache"
    _fetch(cache, [server.url], specs)
    ours = cache / DOWNLOADS_DIR / specs[3].name
    ours.write_bytes(b"x" * specs[3].size)  # same size, wrong bytes
    _fetch(cache, [server.url], specs)
    assert server.requests[specs[3].name] == 2
    assert sha256_of(ours) == specs[3].sha256


def test_offline_uses_cache_and_names_missing_files(tmp_path: Path, small_files: Files):
    root, specs = small_files
    cache = tmp_path / "cache"
    cache.mkdir()
    os.link(root / specs[0].name, cache / specs[0].name)
    with pytest.raises(DownloadError, match="offline") as err:
        _fetch(cache, ["http://127.0.0.1:9/unused/"], specs, offline=True)
    for spec in specs[1:]:
        assert spec.name in str(err.value)
    assert specs[0].name not in str(err.value)
    paths = _fetch(cache, [], specs[:1], offline=True)
    assert paths[specs[0].name] == cache / specs[0].name


def test_file_url_mirror_works(tmp_path: Path, small_files: Files):
    root, specs = small_files
    paths = _fetch(tmp_path / "cache", [root.as_uri() + "/"], specs)
    assert all(sha256_of(paths[s.name]) == s.sha256 for s in specs)


def test_progress_is_logged_for_large_files(tmp_path: Path, mirror_factory, caplog):
    root = tmp_path / "served"
    root.mkdir()
    body = os.urandom(2_000_000)
    (root / "big.gz").write_bytes(body)
    spec = MnistFile("big.gz", hashlib.sha256(body).hexdigest(), len(body))
    with caplog.at_level(logging.INFO):
        _fetch(tmp_path / "cache", [mirror_factory(root).url], (spec,))
    progress = [r.getMessage() for r in caplog.records if "MB (" in r.getMessage()]
    assert len(progress) == 4 and progress[-1].endswith("2.0/2.0 MB (100%)")


@pytest.mark.skipif(not os.environ.get("MNIST_DIR"), reason="MNIST_DIR (real MNIST files) not set")
def test_real_mnist_bytes_verify_against_builtin_checksums(tmp_path: Path, mirror_factory):
    server: MirrorServer = mirror_factory(Path(os.environ["MNIST_DIR"]))
    paths = ensure_mnist(tmp_path / "cache", [server.url], base_delay_s=0.0)
    assert [p.stat().st_size for p in paths.values()] == [f.size for f in MNIST_FILES]


def test_stale_partial_downloads_are_removed_live_ones_kept(tmp_path: Path, small_files: Files):
    """A SIGKILLed download leaves a .part file; the next run deletes it, but never one that a
    live download (which holds an flock on it) is still writing."""
    root, specs = small_files
    cache = tmp_path / "cache"
    downloads = cache / DOWNLOADS_DIR
    downloads.mkdir(parents=True)
    stale = downloads / f".{specs[0].name}.abc123.part"
    stale.write_bytes(b"half a file")
    live = downloads / f".{specs[1].name}.def456.part"
    live.write_bytes(b"being written")
    with live.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as transfer.stream_to_temp does for its whole life
        ensure_mnist(cache, [root.as_uri() + "/"], files=specs)
        assert not stale.exists() and live.exists()
    assert remove_stale_parts(downloads) == [live]
    assert sorted(p.name for p in downloads.iterdir()) == sorted(s.name for s in specs)

"""Serving from an S3 registry on a real server: hot reload, the store going away, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from registry import IntegrityError, Registry
from tests.helpers.seaweedfs import SeaweedS3, free_port
from tests.helpers.servers import Running
from tests.helpers.toy_models import MODEL, publish, random_images

pytestmark = pytest.mark.integration


def _wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _reachable(running: Running) -> float:
    text = running.server.core.metrics.exposition().decode()
    line = next(x for x in text.splitlines() if x.startswith("digits_registry_reachable "))
    return float(line.split()[1])


def test_serves_follows_promotions_and_survives_the_store_going_away(
    s3_url: str, s3_server: SeaweedS3, start_server: Callable[..., Running], tmp_path: Path
) -> None:
    registry = Registry(s3_url)
    publish(registry, seed=1)
    running = start_server(registry, poll_interval_s=0.1, cache_dir=tmp_path / "cache")
    images = random_images(4)
    assert running.client.predict(images).version == 1

    publish(registry, seed=2)  # promoted: the server swaps within a few polls
    _wait_for(lambda: running.client.predict(images).version == 2)
    assert _reachable(running) == 1

    s3_server.stop()
    _wait_for(lambda: _reachable(running) == 0)
    for _ in range(20):  # answers keep coming from the last verified model in memory
        assert running.client.predict(images).version == 2

    s3_server.start()
    _wait_for(lambda: _reachable(running) == 1)
    publish(Registry(s3_url), seed=3)
    _wait_for(lambda: running.client.predict(images).version == 3)


def test_cache_dir_serves_verified_files_without_downloading_them_again(
    s3_url: str, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    publish(Registry(s3_url), seed=1)
    first = Registry(s3_url, cache_dir=cache).load(MODEL)
    assert len(list(cache.iterdir())) == 1
    # Remove the stored weights: a restarted reader still loads them, from the verified cache.
    client = s3_server.client()
    prefix = s3_url.removeprefix("s3://digits/") + f"/{MODEL}/uploads/"
    for item in client.list_objects_v2(Bucket="digits", Prefix=prefix)["Contents"]:
        client.delete_object(Bucket="digits", Key=item["Key"])
    again = Registry(s3_url, cache_dir=cache).load(MODEL)
    for key, array in first.params.items():
        assert np.array_equal(again.params[key], array)
    # A damaged cache file is dropped, never served: the load now needs the store, which lost it.
    (cached,) = cache.iterdir()
    cached.write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match="missing"):
        Registry(s3_url, cache_dir=cache).load(MODEL)
    assert not cached.exists()


REPO = Path(__file__).resolve().parents[2]
NO_AWS_FILE = str(REPO / "no-such-aws-file")
MISSING_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
    "AWS_SHARED_CREDENTIALS_FILE": NO_AWS_FILE, "AWS_CONFIG_FILE": NO_AWS_FILE,
    "AWS_EC2_METADATA_DISABLED": "true",
}  # fmt: skip


def _serve(url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`digits serve` on free ports with ``env`` over the environment (empty value: unset)."""
    merged = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--registry", url, "--port", "0",
         "--metrics-port", "-1", "--host", "127.0.0.1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in merged.items() if v},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "check AWS_ACCESS_KEY_ID and AWS_SECRET"),
        ({"AWS_ACCESS_KEY_ID": "nobody"}, "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ({"bucket": "no-such-bucket"}, "bucket 'no-such-bucket' does not exist"),
        (MISSING_CREDENTIALS, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ],
    ids=["wrong secret", "unknown key", "missing bucket", "missing credentials"],
)
def test_serve_exits_1_on_a_store_configuration_error(
    s3_url: str, fault: dict[str, str], message: str
) -> None:
    publish(Registry(s3_url), seed=1)
    env = dict(fault)
    url = (
        s3_url.replace("s3://digits/", f"s3://{env.pop('bucket')}/") if "bucket" in env else s3_url
    )
    process = _serve(url, env)
    try:
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("digits serve: error: registry ") and message in lines[0]
    assert "cannot reach" not in lines[0]


def test_serve_waits_for_an_unreachable_store(s3_url: str) -> None:
    process = _serve(s3_url, {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.communicate(timeout=8)  # still running: an outage is waited out
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    assert "registry unusable; no version of 'digits' loaded yet, waiting for it" in err
    assert "cannot reach the registry" in err

"""The prediction log on an s3:// prefix of a real S3 server (SeaweedFS): closed files are
uploaded, read back by `digits logs`, and kept in the spool while the store is down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from registry import Registry
from service.client import ServiceError
from service.observability.log_records import FILE_GLOB, decode_input, read_records
from tests.helpers.metrics_text import by_label
from tests.helpers.seaweedfs import SeaweedS3
from tests.helpers.servers import start
from tests.helpers.toy_models import publish, random_images

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "models")
    publish(reg, seed=1)
    return reg


def test_closed_files_land_in_the_bucket_and_read_back(registry: Registry, s3_url: str, tmp_path):
    destination = f"{s3_url}/predictions"
    running = start(registry, prediction_log=destination, cache_dir=tmp_path / "cache")
    images = random_images(4, seed=2)
    try:
        running.client.predict(images, request_id="in-s3")
        with pytest.raises(ServiceError):
            running.client.predict(images, version=9, request_id="missing")
    finally:
        running.close()  # closes the current file, which is then uploaded
    assert list((tmp_path / "cache").rglob(FILE_GLOB)) == []  # nothing left in the spool
    records = {r["request_id"]: r for r in read_records(destination)}
    assert records["missing"]["status"] == "NOT_FOUND"
    np.testing.assert_array_equal(decode_input(records["in-s3"]), images)
    out = tmp_path / "export"
    command = ["logs", "export", destination, str(out), "--predicted-labels"]
    exported = subprocess.run([sys.executable, "-m", "cli", *command], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "exported 4 images" in exported.stdout


def test_a_store_that_is_down_keeps_the_file_for_the_next_run(
    registry: Registry, s3_url: str, s3_server: SeaweedS3, tmp_path: Path
):
    destination = f"{s3_url}/down"
    settings = {"prediction_log": destination, "cache_dir": tmp_path / "cache",
                "metrics_port": 0}  # fmt: skip
    running = start(registry, **settings)
    try:
        running.client.predict(random_images(1), request_id="kept")
        s3_server.stop()
        running.server.core.monitoring.sync(rotate=True)  # the file closed, its upload failed
        uploads = by_label(running, "digits_prediction_log_uploads_total", "outcome")
        assert uploads["failed"] >= 1 and uploads["stored"] == 0
    finally:
        running.close()
    assert len(list((tmp_path / "cache").rglob(FILE_GLOB))) == 1  # kept, not lost
    s3_server.start()
    again = start(registry, **settings)  # the writer uploads the leftover at start
    try:
        again.client.predict(random_images(1), request_id="second run")
    finally:
        again.close()
    assert {r["request_id"] for r in read_records(destination)} == {"kept", "second run"}

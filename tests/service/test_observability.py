"""The Prometheus endpoint exposes the request, batch and model metrics; the healthcheck module."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from service.healthcheck import main as healthcheck
from service.observability.logs import JsonFormatter
from tests.helpers.servers import Running
from tests.helpers.toy_models import random_images

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _sample(text: str, metric: str, **labels: str) -> float:
    """Value of one sample in Prometheus text format (labels in any order)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{metric}(?:\{{(.*)\}})? (\S+)", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if found == labels:
                return float(match.group(2))
    raise AssertionError(f"no sample {metric}{labels} in:\n{text}")


def test_metrics_endpoint_counts_requests(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    running = start_server(registry, metrics_port=0, batching=True)  # queue delay is batcher's
    for _ in range(3):
        running.client.predict(random_images(2))
    with pytest.raises(grpc.RpcError):
        running.stub.Predict(pb.PredictRequest(images=pb.Tensor(data=b"x")), timeout=5)
    url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert _sample(text, "digits_requests_total", method="Predict", code="OK") == 3
    assert _sample(text, "digits_requests_total", method="Predict", code="INVALID_ARGUMENT") == 1
    assert _sample(text, "digits_request_latency_seconds_count", method="Predict") == 4
    assert _sample(text, "digits_batch_rows_sum") == 6
    assert _sample(text, "digits_queue_delay_seconds_count") == 3
    assert _sample(text, "digits_model_info", name="digits", version="1") == 1
    assert _sample(text, "digits_model_version") == 1
    assert _sample(text, "digits_model_reloads_total") == 0
    assert _sample(text, "digits_model_reload_failures_total") == 0


def test_two_servers_keep_separate_metrics(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    first, second = start_server(registry), start_server(registry)
    first.client.predict(random_images(1))
    assert b'code="OK",method="Predict"} 1.0' in first.server.core.metrics.exposition()
    assert b'method="Predict"' not in second.server.core.metrics.exposition()


def test_healthcheck_module_exit_codes(
    tmp_path: Path, registry: Registry, start_server: Callable[..., Running]
) -> None:
    serving = start_server(registry)
    empty = start_server(Registry(tmp_path / "empty"))
    command = [sys.executable, "-m", "service.healthcheck", "--target", serving.target]
    assert subprocess.run(command, cwd=REPO, capture_output=True, timeout=30).returncode == 0
    # The rest call the same entry point in-process (a subprocess each would cost ~1 s).
    assert healthcheck(["--target", serving.target, "--service", "digits.v1.DigitClassifier"]) == 0
    assert healthcheck(["--target", serving.target, "--service", "no.such.Service"]) == 1
    assert healthcheck(["--target", empty.target]) == 1
    port = empty.port
    empty.server.stop(grace=None)
    assert healthcheck(["--target", f"127.0.0.1:{port}", "--timeout", "1"]) == 1


def test_reflection_lists_the_services(served: Running) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    database = ProtoReflectionDescriptorDatabase(served.channel)
    services = set(database.get_services())
    assert {"digits.v1.DigitClassifier", "grpc.health.v1.Health"} <= services
    method = database.FindFileContainingSymbol("digits.v1.DigitClassifier")
    assert method.package == "digits.v1"


def test_failed_request_is_logged_once_with_its_request_id(
    served: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="service.rpc")
    bad = pb.PredictRequest(images=pb.Tensor(data=b"xyz", dtype=pb.DTYPE_UINT8, shape=[1, 784]))
    with pytest.raises(grpc.RpcError):
        served.stub.Predict(bad, metadata=(("x-request-id", "trace-42"),), timeout=5)
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-42"]
    assert len(records) == 1
    assert records[0].code == "INVALID_ARGUMENT" and records[0].method == "Predict"
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "trace-42" and "3 bytes" in line["message"]

"""The C++ load generator of bench/serve.py, built here and run against a real server.

Its counts are checked against the server's own Prometheus counters, so a generator that
miscounts (or times nothing) fails. Skipped where no g++ with grpc++ headers is installed
(bench/native/build.sh installs them with apt when run as root; tests never do).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from tests.helpers.servers import Running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREDICT = "/digits.v1.DigitClassifier/Predict"


def _toolchain() -> bool:
    if shutil.which("g++") is None or shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "grpc++"]).returncode == 0


@pytest.fixture(scope="module")
def loadgen() -> Path:
    """The binary bench/serve.py runs (built here unless this version of it already was)."""
    if not _toolchain():
        pytest.skip("no g++ with grpc++ headers (apt: g++ pkg-config libgrpc++-dev)")
    build = ["bash", str(ROOT / "bench/native/build.sh")]
    return Path(subprocess.run(build, check=True, capture_output=True, text=True).stdout.strip())


def _request(tmp_path: Path, data: bytes, shape: list[int]) -> Path:
    path = tmp_path / "request.bin"
    tensor = pb.Tensor(data=data, dtype=pb.DTYPE_UINT8, shape=shape)
    path.write_bytes(pb.PredictRequest(images=tensor).SerializeToString())
    return path


def _run(loadgen: Path, target: str, request: Path, *extra: str) -> dict:
    command = [str(loadgen), "--target", target, "--request", str(request), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def _served(running: Running, code: str, method: str) -> int:
    text = running.server.core.metrics.exposition().decode()
    pattern = rf'digits_requests_total{{code="{code}",method="{method}"}} (\S+)'
    match = re.search(pattern, text)
    return int(float(match.group(1))) if match else 0


@pytest.mark.parametrize("streams", [0, 2])
def test_counts_match_the_servers_and_the_checked_answer_is_real(
    loadgen: Path,
    registry: Registry,
    start_server: Callable[..., Running],
    tmp_path: Path,
    streams: int,
) -> None:
    running = start_server(registry)
    images = np.arange(2 * 784, dtype=np.uint8).reshape(2, 784)
    request = _request(tmp_path, images.tobytes(), [2, 784])
    answer = tmp_path / "answer.bin"
    method = PREDICT if not streams else "/digits.v1.DigitClassifier/PredictStream"
    result = _run(
        loadgen, running.target, request, "--method", method, "--concurrency", "4",
        "--streams", str(streams), "--duration", "0.5", "--warmup", "0", "--check-out", str(answer),
        "--check-method", PREDICT,
    )  # fmt: skip
    assert result["errors"] == 0 and result["requests"] > 20
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    # The check call is one more unary Predict; a stream is one RPC carrying many messages.
    assert _served(running, "OK", "Predict") == (1 if streams else result["requests"] + 1)
    assert _served(running, "OK", "PredictStream") == streams
    reply = pb.PredictResponse.FromString(answer.read_bytes())
    expected = running.client.predict(images).probabilities.ravel()
    got = np.frombuffer(reply.probabilities.data, dtype="<f4")
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_errors_are_counted_and_named(
    loadgen: Path, registry: Registry, start_server: Callable[..., Running], tmp_path: Path
) -> None:
    running = start_server(registry)
    truncated = _request(tmp_path, b"\x00" * 783, [1, 784])
    result = _run(
        loadgen, running.target, truncated, "--method", PREDICT, "--concurrency", "2",
        "--duration", "0.3", "--warmup", "0",
    )  # fmt: skip
    assert result["requests"] == 0
    assert result["errors"] >= 2 and result["first_error"].startswith("INVALID_ARGUMENT: ")
    assert result["errors"] == _served(running, "INVALID_ARGUMENT", "Predict")


def test_a_failed_check_is_reported_not_timed(loadgen: Path, tmp_path: Path) -> None:
    request = _request(tmp_path, b"\x00" * 784, [1, 784])
    with_port = "127.0.0.1:1"  # nothing listens on port 1
    result = _run(
        loadgen, with_port, request, "--method", PREDICT, "--concurrency", "1",
        "--duration", "0.2", "--check-out", str(tmp_path / "answer.bin"),
    )  # fmt: skip
    assert result["failed"].startswith("UNAVAILABLE")


def test_bad_flags_exit_2_with_usage(loadgen: Path) -> None:
    done = subprocess.run([str(loadgen), "--target"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: loadgen" in done.stderr
    done = subprocess.run([str(loadgen), "--bogus", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown flag --bogus" in done.stderr

"""A port in use fails with the address and the flag / variable / make variable that sets it."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.observability.metrics import ServiceMetrics

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by a listening socket for the test's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_metrics_port_in_use_names_address_flag_and_variables(taken_port: int) -> None:
    with pytest.raises(OSError) as err:
        ServiceMetrics().start_http("127.0.0.1", taken_port)
    message = str(err.value)
    assert message.startswith(f"cannot serve metrics on 127.0.0.1:{taken_port}: ")
    assert "--metrics-port or DIGITS_METRICS_PORT" in message and "METRICS_PORT=" in message


@pytest.mark.integration
@pytest.mark.parametrize("which", ["port", "metrics-port"])
def test_digits_serve_port_in_use_is_one_line_naming_the_flag(
    which: str, taken_port: int, tmp_path: Path
) -> None:
    """One line on stderr, no gRPC core log line beside it, exit 1, before loading a model."""
    ports = {"port": "0", "metrics-port": "-1"} | {which: str(taken_port)}
    command = [sys.executable, "-m", "cli", "serve", "--registry", str(tmp_path),
               "--port", ports["port"], "--metrics-port", ports["metrics-port"]]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{taken_port}" in lines[0]
    variable = "DIGITS_PORT" if which == "port" else "DIGITS_METRICS_PORT"
    assert f"--{which} or {variable}" in lines[0]


def test_check_ports_names_the_taken_one_and_passes_free_ones(taken_port: int) -> None:
    from service.preflight import check_ports
    from service.settings import ServiceSettings

    check_ports(ServiceSettings(port=0, metrics_port=0))  # any free port: nothing to check
    with pytest.raises(OSError, match=rf"127\.0\.0\.1:{taken_port}: .*--metrics-port or DIGITS_"):
        check_ports(ServiceSettings(port=0, metrics_port=taken_port))
    with pytest.raises(OSError, match=rf"127\.0\.0\.1:{taken_port}: .*--port or DIGITS_PORT"):
        check_ports(ServiceSettings(port=taken_port, metrics_port=-1))


@pytest.mark.integration
def test_python_m_service_fails_in_one_line_naming_the_variable(
    taken_port: int, tmp_path: Path
) -> None:
    """The documented `DIGITS_...=... python -m service`: no traceback for a bad value or port."""
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "DIGITS_REGISTRY": str(tmp_path),
            "DIGITS_METRICS_PORT": "-1"}  # fmt: skip
    cases = {"abc": (2, "DIGITS_PORT: Input should be a valid integer"),
             str(taken_port): (1, f"127.0.0.1:{taken_port}: ")}  # fmt: skip
    for port, (code, phrase) in cases.items():
        done = subprocess.run([sys.executable, "-m", "service"], env=base | {"DIGITS_PORT": port},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == code and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("python -m service: error: ") and phrase in done.stderr

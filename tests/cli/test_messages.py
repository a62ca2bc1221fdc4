"""Failures speak the user's words: one line naming the flag, no traceback (unless --debug),
no gRPC core log line, no Python object reprs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.exits import ExitCode
from cli.main import main
from registry import Registry
from tests.helpers.certs import make_pki
from tests.helpers.servers import Running
from tests.helpers.toy_models import publish

REPO = Path(__file__).resolve().parents[2]


def _digits(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a fresh process, as a user runs it (no GRPC_* or DIGITS_* set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_", "DIGITS_"))}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_predict_on_a_non_image_names_the_file_not_a_bytesio(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a picture")
    assert main(["predict", "--target", "127.0.0.1:1", str(tmp_path / "notes.txt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"digits predict: error: {tmp_path / 'notes.txt'}: not a picture (")
    assert "BytesIO" not in err and "0x" not in err and err.count("\n") == 1


def test_bad_layer_sizes_are_quoted_once_naming_the_flag(tmp_path: Path, capsys) -> None:
    assert main(["train", "--layer-sizes", "784,10,9", "--registry", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "digits train: error: invalid training settings: --layer-sizes: must start " \
        "with 784 inputs and end with 10 classes, got 784,10,9\n"  # fmt: skip


def test_debug_adds_the_traceback_of_an_expected_failure(tmp_path: Path, capsys) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert main(["train", "--registry", str(not_a_dir)]) == 1
    quiet = capsys.readouterr().err
    assert "Traceback" not in quiet and quiet.count("\n") == 1
    assert main(["--debug", "train", "--registry", str(not_a_dir)]) == 1
    loud = capsys.readouterr().err
    assert loud.startswith("Traceback (most recent call last):") and "PreflightError" in loud
    assert loud.endswith(quiet)  # the same one line, last


@pytest.mark.integration
def test_tls_handshake_failure_is_one_line_without_grpc_core_log(
    registry: Registry, start_server: Callable[..., Running], tmp_path: Path
) -> None:
    publish(registry, 0)
    _ca, server, _client = make_pki(tmp_path)
    (tmp_path / "other").mkdir()
    stranger, _, _ = make_pki(tmp_path / "other")  # a CA that did not sign the server
    running = start_server(registry, tls_cert=server.cert, tls_key=server.key)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 13:15] = 255  # a "1", white on black
    Image.fromarray(digit).save(tmp_path / "one.png")
    args = ["predict", "--target", running.target, "--tls-ca", str(stranger.cert), "--timeout", "5"]
    done = _digits(*args, "one.png", cwd=tmp_path)  # the client refuses the server's certificate
    assert done.returncode == ExitCode.SERVICE
    assert done.stderr.startswith("digits predict: error: ") and done.stderr.count("\n") == 1
    assert "UNAVAILABLE" in done.stderr and "handshake failed" in done.stderr.lower()
    assert "ssl_transport_security.cc" not in done.stderr  # gRPC core's own log line


@pytest.mark.integration
def test_a_file_as_registry_is_named_as_such(tmp_path: Path) -> None:
    """Not `[Errno 20] Not a directory: '.../digits'`: the registry and the flag to set."""
    not_a_dir = tmp_path / "passwd"
    not_a_dir.write_text("x")
    for command, *rest in (["models", "list"], ["serve", "--port", "0", "--metrics-port", "-1"]):
        done = _digits(command, "--registry", str(not_a_dir), *rest, cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr == (
            f"digits {command}: error: registry {not_a_dir} is not a directory "
            "(set --registry or DIGITS_REGISTRY to a directory)\n"
        )

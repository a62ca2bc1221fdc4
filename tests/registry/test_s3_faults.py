"""An unusable object store on the command line: one clear line, non-zero exit, nothing written.

Wrong credentials, a missing bucket and an unreachable endpoint, on `digits models` and
`digits train` (which checks the registry before it trains), against the real test server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import Registry
from tests.helpers.registry_backends import stored_keys
from tests.helpers.registry_data import toy_params
from tests.helpers.seaweedfs import SeaweedS3, free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

FAULTS = {
    "wrong credentials": ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "", "access denied"),
    "missing bucket": ({}, "s3://no-such-bucket/x", "bucket 'no-such-bucket' does not exist"),
    "missing credentials": (
        {
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
            "AWS_PROFILE": "",
            "AWS_SHARED_CREDENTIALS_FILE": "{missing}",
            "AWS_CONFIG_FILE": "{missing}",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        "",
        "no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
    "unreachable endpoint": ({"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"}, "", "cannot reach"),
}


def _digits(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `digits ARGS` with ``env`` over the environment (an empty value unsets a variable)."""
    merged = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True,
        timeout=120, env={k: v for k, v in merged.items() if v},
    )  # fmt: skip


def _fault(name: str, s3_url: str) -> tuple[dict[str, str], str, str]:
    overrides, url, message = FAULTS[name]
    missing = str(REPO / "no-such-aws-file")
    env = {k: v.format(port=free_port(), missing=missing) for k, v in overrides.items()}
    return env, url or s3_url, message


def _assert_one_clear_line(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("action", [["list"], ["show"], ["promote", "1"], ["gc", "--keep", "1"]])
def test_models_commands_fail_with_one_line(
    s3_url: str, s3_server: SeaweedS3, fault: str, action: list[str]
) -> None:
    Registry(s3_url).publish("digits", toy_params(), {})
    before = stored_keys(s3_server, s3_url.removeprefix("s3://digits/"))
    env, url, message = _fault(fault, s3_url)
    done = _digits("models", "--registry", url, *action, env=env)
    _assert_one_clear_line(done, message)
    assert stored_keys(s3_server, s3_url.removeprefix("s3://digits/")) == before


@pytest.mark.parametrize("fault", FAULTS)
def test_train_fails_before_training_and_publishes_nothing(
    s3_url: str, s3_server: SeaweedS3, fault: str, tmp_path: Path
) -> None:
    env, url, message = _fault(fault, s3_url)
    done = _digits(
        "train", "--registry", url, "--offline", "--data-dir", str(tmp_path), "--epochs", "1",
        env={**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
    )  # fmt: skip
    _assert_one_clear_line(done, message)
    assert stored_keys(s3_server, s3_url.removeprefix("s3://digits/")) == []

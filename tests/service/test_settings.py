"""ServiceSettings from the environment and from `digits serve` flags (flags win)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli import serve
from cli.main import CommandError
from service.settings import ServiceSettings


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_environment_fills_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_PORT", "6000")
    monkeypatch.setenv("DIGITS_REGISTRY", "/srv/models")
    monkeypatch.setenv("DIGITS_BATCHING", "false")
    settings = ServiceSettings()
    assert (settings.port, settings.registry, settings.batching) == (
        6000,
        Path("/srv/models"),
        False,
    )
    assert settings.max_delay_us == 0 and settings.alias == "production"


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_PORT", "6000")
    monkeypatch.setenv("DIGITS_MAX_BATCH", "64")
    args = _parse("--port", "7000", "--no-batching", "--max-delay-us", "250", "--no-v2")
    settings = serve.settings_from_args(args)
    assert (settings.port, settings.max_batch, settings.batching) == (7000, 64, False)
    assert settings.max_delay_us == 250 and settings.enable_v2 is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [(("--host", "0.0.0.0"), "refusing plaintext"), (("--port", "70000"), "port"),
     (("--tls-cert", "c.pem"), "together")],
)  # fmt: skip
def test_bad_flags_become_one_line_command_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message) as err:
        serve.settings_from_args(_parse(*argv))
    assert "\n" not in str(err.value) and err.value.exit_code == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [("s3://digits/models", "s3://digits/models"), ("/srv/models", Path("/srv/models"))],
)
def test_registry_is_a_directory_or_an_s3_url_from_env_and_flag(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    """An s3:// URL stays text (a Path would fold its '//' into 's3:/'), a directory is a Path."""
    monkeypatch.setenv("DIGITS_REGISTRY", value)
    assert ServiceSettings().registry == expected
    monkeypatch.delenv("DIGITS_REGISTRY")
    assert serve.settings_from_args(_parse("--registry", value)).registry == expected

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


def test_connection_flags_become_settings_and_grpc_options() -> None:
    from service.rpc.keepalive import connection_options

    args = _parse(
        *(
            "--keepalive-time",
            "0.5",
            "--keepalive-timeout",
            "0.25",
            "--no-keepalive-permit-without-calls",
        ),
        *("--min-ping-interval", "1", "--max-ping-strikes", "3", "--max-connection-idle", "0"),
        *("--max-connection-age", "60", "--max-connection-age-grace", "7", "--drain-delay", "2"),
    )
    settings = serve.settings_from_args(args)
    assert settings.drain_delay_s == 2
    options = dict(connection_options(settings))
    assert options == {
        "grpc.keepalive_time_ms": 500,
        "grpc.keepalive_timeout_ms": 250,
        "grpc.http2.ping_timeout_ms": 250,
        "grpc.keepalive_permit_without_calls": 0,
        "grpc.http2.min_ping_interval_without_data_ms": 1000,
        "grpc.http2.max_ping_strikes": 3,
        "grpc.http2.max_pings_without_data": 0,
        "grpc.max_connection_age_ms": 60_000,
        "grpc.max_connection_age_grace_ms": 7000,
    }  # idle 0: no option, gRPC's "never"


def test_connection_defaults_are_production_ones() -> None:
    settings = ServiceSettings()
    assert settings.drain_delay_s > 0  # a rolling update must not refuse connections
    assert settings.min_ping_interval_s <= 10  # clients pinging every 10 s are welcome
    assert settings.keepalive_time_s + settings.keepalive_timeout_s <= 120  # dead peers found

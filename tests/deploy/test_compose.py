"""compose.yaml parsed and checked against the code: commands, ports, health, env and volumes."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from registry import REGISTRY_ENV_VAR
from service.settings import ServiceSettings
from tests.helpers.deploy_files import compose, image_env, stages

SERVICE_FIELDS = {f"DIGITS_{name.upper()}" for name in ServiceSettings.model_fields}


def services() -> dict[str, Any]:
    return compose()["services"]


def parse_digits_command(argv: list[str]) -> argparse.Namespace:
    """Parse with the real `digits` parser; a flag it does not know fails the test."""
    from cli.main import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"`digits {' '.join(argv)}` does not parse (exit {exit_.code})")


def volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (volume name, mode) of a service's short-form volume entries."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def test_three_roles_from_the_two_image_targets() -> None:
    found = services()
    assert found["model-server"]["build"]["target"] == "serve"
    for name in ("prefect", "scheduler", "train-once"):
        assert found[name]["build"]["target"] == "train", name


def test_prefect_server_listens_beyond_loopback_and_has_a_healthcheck() -> None:
    prefect = services()["prefect"]
    assert prefect["entrypoint"] == ["prefect"]
    command = prefect["command"]
    assert command[:2] == ["server", "start"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert any(mapping.endswith(f":{port}") for mapping in prefect["ports"])
    assert "/api/health" in " ".join(prefect["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["scheduler", "train-once"])
def test_training_services_reach_prefect_and_parse_with_the_cli(name: str) -> None:
    service = services()[name]
    args = parse_digits_command(service["command"])
    assert args.command in ("schedule", "train")
    prefect_port = services()["prefect"]["command"][-1]
    assert service["environment"]["PREFECT_API_URL"] == f"http://prefect:{prefect_port}/api"
    assert service["depends_on"]["prefect"]["condition"] == "service_healthy"


def test_scheduler_uses_a_five_field_cron() -> None:
    args = parse_digits_command(services()["scheduler"]["command"])
    assert args.command == "schedule" and len(args.cron.split()) == 5


def test_train_once_only_trains_an_empty_registry() -> None:
    args = parse_digits_command(services()["train-once"]["command"])
    assert args.command == "train" and args.if_empty
    assert services()["train-once"]["restart"] == "no"


def test_every_role_uses_one_s3_registry_created_by_the_store() -> None:
    """Trainers and the server name the same s3:// registry on the SeaweedFS service, whose
    command creates that bucket and whose credentials are the ones the clients send."""
    found = services()
    store = found["seaweedfs"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in store["command"][1:])
    assert store["command"][0] == "mini" and flags["master.telemetry"] == "false"
    assert "/healthz" in " ".join(store["healthcheck"]["test"])
    for name in ("model-server", "scheduler", "train-once"):
        env = found[name]["environment"]
        bucket = env[REGISTRY_ENV_VAR].removeprefix("s3://").split("/")[0]
        assert env[REGISTRY_ENV_VAR].startswith("s3://") and bucket == flags["bucket"], name
        assert env["AWS_ENDPOINT_URL"] == f"http://seaweedfs:{flags['s3.port']}", name
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key] == store["environment"][key], (name, key)
        assert found[name]["depends_on"]["seaweedfs"]["condition"] == "service_healthy", name
        assert not any(":/models" in v for v in found[name].get("volumes", [])), "no shared dir"
    assert "registry-data:/data" in store["volumes"]


def test_model_server_settings_validate_and_ports_are_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = services()["model-server"]
    env = {**image_env("serve", stages()), **server["environment"]}
    digits_env = {key: str(value) for key, value in env.items() if key.startswith("DIGITS_")}
    unknown = set(digits_env) - SERVICE_FIELDS
    assert not unknown, f"unknown settings: {unknown}"
    for key, value in digits_env.items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.poll_interval_s > 0, "hot reload must be on"
    published = {mapping.rsplit(":", 1)[-1] for mapping in server["ports"]}
    assert {str(settings.port), str(settings.metrics_port)} <= published


def test_model_server_healthcheck_probes_its_grpc_port() -> None:
    server = services()["model-server"]
    test = server["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "service.healthcheck"]
    port = server["environment"]["DIGITS_PORT"]
    assert test[test.index("--target") + 1] == f"127.0.0.1:{port}"


def test_mnist_cache_volume_is_where_the_pipeline_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image user's home is /home/digits; the default MNIST cache must be in a volume."""
    from pipeline.download import default_cache_dir

    runtime_runs = " ".join(item.value for item in stages()["runtime"].of("RUN"))
    assert "--home-dir /home/digits" in runtime_runs
    monkeypatch.setenv("HOME", "/home/digits")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    cache = default_cache_dir()
    for name in ("scheduler", "train-once"):
        mounts = volume_mounts(services()[name])
        assert any(cache.is_relative_to(path) for path in mounts), f"{name}: {cache} not mounted"

"""deploy/k8s parsed and checked against the code: gRPC probes, ports, env, volumes, retraining."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from registry import REGISTRY_ENV_VAR
from service.settings import ServiceSettings
from tests.helpers.deploy_files import K8S_DIR, effective, k8s_documents, k8s_object, stages

APP_UID = 10001


def server_container() -> dict[str, Any]:
    containers = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def named_ports(container: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    files = {path.name for path in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert {doc["kind"] for doc in k8s_documents()} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "CronJob",
    }
    assert "PersistentVolumeClaim" not in {doc["kind"] for doc in k8s_documents()}


def registry_config() -> dict[str, str]:
    return dict(k8s_object("ConfigMap", "digits-registry")["data"])


def test_server_env_names_real_settings_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {k: v for k, v in registry_config().items() if k.startswith("DIGITS_")}
    env = {**config, **container_env(server_container())}
    fields = {f"DIGITS_{name.upper()}" for name in ServiceSettings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.host == "0.0.0.0" and settings.poll_interval_s > 0


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_are_native_grpc_on_the_served_port(probe: str) -> None:
    container = server_container()
    port = int(container_env(container)["DIGITS_PORT"])
    assert container[probe]["grpc"]["port"] == port == named_ports(container)["grpc"]
    assert "service" not in container[probe]["grpc"], "probe the whole server ('')"


def test_ports_match_settings_and_the_service() -> None:
    container = server_container()
    env = container_env(container)
    ports = named_ports(container)
    assert ports == {"grpc": int(env["DIGITS_PORT"]), "metrics": int(env["DIGITS_METRICS_PORT"])}
    assert ServiceSettings().port == ports["grpc"]
    service = k8s_object("Service", "digits-server")
    by_name = {port["name"]: port for port in service["spec"]["ports"]}
    assert by_name["grpc"]["port"] == ports["grpc"] and by_name["grpc"]["targetPort"] == "grpc"
    assert by_name["metrics"]["targetPort"] == "metrics"
    pod_labels = k8s_object("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_resources_have_requests_and_limits() -> None:
    resources = server_container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and set(resources["limits"])


def test_pods_run_as_the_image_user() -> None:
    user = effective("serve", "USER", stages())
    assert user is not None and user.value.split(":")[0] == str(APP_UID)
    for kind in ("Deployment", "CronJob"):
        spec = k8s_object(kind)["spec"]
        pod = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
        context = pod["spec"]["securityContext"]
        assert context["runAsNonRoot"] and context["runAsUser"] == APP_UID, kind


def test_server_and_retraining_read_the_s3_registry_from_config_and_secret() -> None:
    """No shared volume: both pods take the registry URL and endpoint from the ConfigMap and
    the credentials from a Secret that is created by hand, never committed."""
    config = registry_config()
    assert config[REGISTRY_ENV_VAR].startswith("s3://") and "AWS_ENDPOINT_URL" in config
    assert not any("SECRET" in key for key in config)
    assert "Secret" not in {doc["kind"] for doc in k8s_documents()}
    server_pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    job_pod = k8s_object("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for pod in (server_pod, job_pod):
        (container,) = pod["containers"]
        sources = container["envFrom"]
        assert {"configMapRef": {"name": "digits-registry"}} in sources
        assert {"secretRef": {"name": "digits-registry-credentials"}} in sources
        assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    env = container_env(server_container())
    assert float(env["DIGITS_MAX_CONNECTION_AGE_S"]) > 0, "clients must re-resolve replicas"


def test_headless_service_resolves_to_every_server_pod() -> None:
    headless = k8s_object("Service", "digits-server-headless")
    assert headless["spec"]["clusterIP"] == "None"
    pod_labels = k8s_object("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    (port,) = headless["spec"]["ports"]
    assert port["port"] == named_ports(server_container())["grpc"] and port["targetPort"] == "grpc"


def test_retraining_cronjob_runs_a_command_the_cli_accepts() -> None:
    from cli.main import build_parser

    cronjob = k8s_object("CronJob")
    assert len(cronjob["spec"]["schedule"].split()) == 5
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "train"
    assert args.registry_dir is None, "the registry comes from DIGITS_REGISTRY (the ConfigMap)"


def test_rolling_update_drains_before_the_port_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM -> NOT_SERVING; the port stays open until readiness has failed (endpoint gone)."""
    container = server_container()
    for key, value in container_env(container).items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    readiness = container["readinessProbe"]
    unready_after = readiness["periodSeconds"] * readiness["failureThreshold"]
    assert settings.drain_delay_s > unready_after
    pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > settings.drain_delay_s + settings.grace_s


def test_connections_are_probed_and_ten_second_pings_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in container_env(server_container()).items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.keepalive_time_s + settings.keepalive_timeout_s <= 120  # dead peers freed
    assert settings.min_ping_interval_s <= 10 and settings.keepalive_permit_without_calls
    assert settings.max_connection_age_s > 0 and settings.max_connection_age_grace_s > 0

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
        "PersistentVolumeClaim",
        "CronJob",
    }


def test_server_env_names_real_settings_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    env = container_env(server_container())
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
    service = k8s_object("Service")
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


def test_registry_claim_is_shared_by_server_and_retraining() -> None:
    claim = k8s_object("PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "replicas on many nodes share it"
    server_pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    job_pod = k8s_object("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for pod, read_only in ((server_pod, True), (job_pod, False)):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        path = container_env(container)[REGISTRY_ENV_VAR]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == path)
        claim_name = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        assert claim_name == claim["metadata"]["name"]
        assert mount.get("readOnly", False) is read_only


def test_retraining_cronjob_runs_a_command_the_cli_accepts() -> None:
    from cli.main import build_parser

    cronjob = k8s_object("CronJob")
    assert len(cronjob["spec"]["schedule"].split()) == 5
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "train"
    assert str(args.registry_dir) == container_env(container)[REGISTRY_ENV_VAR]

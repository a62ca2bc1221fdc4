"""Structural checks of the Dockerfile: base, targets, user, entrypoint, health check, copies."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from registry import REGISTRY_ENV_VAR
from service.settings import ServiceSettings
from tests.helpers.deploy_files import (
    REPO,
    effective,
    global_args,
    image_env,
    lineage,
    stages,
)

TARGETS = ("serve", "train")
APP_UID = 10001
# What may come from the build context into any stage; everything else stays out of images.
ALLOWED_SOURCES = {
    "pyproject.toml",
    "README.md*",
    "deploy/docker/pyproject_requirements.py",
    "deploy/docker/pip_install.sh",
    "core",
    "registry",
    "service",
    "cli",
    "pipeline",
}
FORBIDDEN_PATTERNS = (".venv*", ".git*", "tests*", "models*", "*.pem", "*.key", ".env*", "bench*")


def copy_sources(value: str) -> list[str]:
    words = [word for word in value.split() if not word.startswith("--")]
    return words[:-1]


def test_base_image_is_an_overridable_arg() -> None:
    assert global_args().get("BASE") == "python:3.11-slim-bookworm"
    all_stages = stages()
    roots = {lineage(target, all_stages)[0].base for target in TARGETS}
    assert roots == {"${BASE}"}, f"both targets must start FROM ${{BASE}}, got {roots}"


def test_serve_is_the_default_target_and_train_exists() -> None:
    names = list(stages())
    assert set(TARGETS) <= set(names)
    assert names[-1] == "serve", "a plain `docker build .` must give the serve image"


@pytest.mark.parametrize("target", TARGETS)
def test_final_user_is_the_fixed_non_root_uid(target: str) -> None:
    user = effective(target, "USER", stages())
    assert user is not None, f"{target}: no USER, the image would run as root"
    uid, _, gid = user.value.partition(":")
    assert uid == str(APP_UID) and gid in ("", str(APP_UID)), user.value
    runtime_runs = " ".join(item.value for item in stages()["runtime"].of("RUN"))
    assert "useradd" in runtime_runs and f"--uid {APP_UID}" in runtime_runs


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoint_is_the_digits_command_in_exec_form(target: str) -> None:
    entrypoint = effective(target, "ENTRYPOINT", stages())
    assert entrypoint is not None and entrypoint.exec_form() == ["digits"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "digits" in scripts
    cmd = effective(target, "CMD", stages())
    assert cmd is not None and cmd.exec_form(), f"{target}: CMD must be exec form"


def test_serve_healthcheck_runs_the_grpc_health_module() -> None:
    health = effective("serve", "HEALTHCHECK", stages())
    assert health is not None, "serve image has no HEALTHCHECK"
    command = health.exec_form()
    assert command is not None, "HEALTHCHECK CMD must be exec form (no shell in the probe)"
    assert command[:3] == ["python", "-m", "service.healthcheck"]
    assert (REPO / "service" / "healthcheck.py").is_file()
    if "--target" in command:
        target = command[command.index("--target") + 1]
        assert target == f"127.0.0.1:{ServiceSettings().port}"
    assert re.search(r"--timeout=\d+s", health.value), "a hung probe must time out"


def test_serve_exposes_the_ports_the_settings_use() -> None:
    all_stages = stages()
    exposed = {port for item in all_stages["serve"].of("EXPOSE") for port in item.value.split()}
    env = image_env("serve", all_stages)
    defaults = ServiceSettings()
    assert {str(defaults.port), str(defaults.metrics_port)} <= exposed
    assert {env["DIGITS_PORT"], env["DIGITS_METRICS_PORT"]} <= exposed


def test_serve_env_is_valid_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's DIGITS_* variables name real settings and validate (0.0.0.0 needs plaintext)."""
    env = image_env("serve", stages())
    digits_env = {key: value for key, value in env.items() if key.startswith("DIGITS_")}
    fields = {f"DIGITS_{name.upper()}" for name in ServiceSettings.model_fields}
    assert set(digits_env) <= fields, f"unknown settings: {set(digits_env) - fields}"
    for key, value in digits_env.items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.host == "0.0.0.0", "a container must listen beyond its own loopback"
    assert str(settings.registry) == "/models"


@pytest.mark.parametrize("target", TARGETS)
def test_registry_is_a_volume_named_by_the_registry_env_var(target: str) -> None:
    all_stages = stages()
    volumes = [item.value for stage in lineage(target, all_stages) for item in stage.of("VOLUME")]
    assert any("/models" in value for value in volumes)
    assert image_env(target, all_stages)[REGISTRY_ENV_VAR] == "/models"


def test_nothing_but_sources_and_build_files_are_copied() -> None:
    for stage in stages().values():
        assert not stage.of("ADD"), f"{stage.name}: use COPY, not ADD"
        for item in stage.of("COPY"):
            if "--from=" in item.value:
                continue
            for source in copy_sources(item.value):
                assert source in ALLOWED_SOURCES, f"{stage.name} copies {source!r}"
                for pattern in FORBIDDEN_PATTERNS:
                    assert not fnmatch.fnmatch(source, pattern), f"{source} matches {pattern}"


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    all_stages = stages()
    for builder in ("build-serve", "build-train"):
        chain = lineage(builder, all_stages)
        order = [item for stage in chain for item in stage.instructions]
        first_install = next(i for i, item in enumerate(order) if "pip_install.sh -r" in item.value)
        first_source = next(
            i for i, item in enumerate(order) if item.name == "COPY" and "core" in item.value
        )
        assert first_install < first_source, f"{builder}: dependency layer after the source"


def test_serve_image_has_no_prefect_and_no_pipeline_package() -> None:
    chain = lineage("build-serve", stages())
    text = " ".join(item.value for stage in chain for item in stage.instructions)
    assert "--extra" not in text and "pipeline" not in text
    train_chain = lineage("build-train", stages())
    train_text = " ".join(item.value for stage in train_chain for item in stage.instructions)
    assert "--extra pipeline" in train_text and "/src/pipeline" in train_text


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    for required in (".venv", ".git", "tests", "models", "*.pem", "*.key", ".env", "bench"):
        assert required in lines, f".dockerignore misses {required}"


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_does_not_hide_what_the_build_copies() -> None:
    for stage in stages().values():
        for item in stage.of("COPY"):
            if "--from=" in item.value:
                continue
            for source in copy_sources(item.value):
                for pattern in dockerignore_patterns():
                    hidden = fnmatch.fnmatch(source, pattern) or source.startswith(f"{pattern}/")
                    assert not hidden, f"{stage.name} copies {source}, .dockerignore has {pattern}"


def test_every_project_package_reaches_the_images() -> None:
    """A new top-level package in pyproject must be copied too (serve: all but the pipeline)."""
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    packages = {pattern.rstrip("*") for pattern in find["find"]["include"]}
    all_stages = stages()

    def copied(builder: str) -> set[str]:
        return {
            source
            for stage in lineage(builder, all_stages)
            for item in stage.of("COPY")
            for source in copy_sources(item.value)
        }

    assert packages <= copied("build-train")
    assert packages - {"pipeline"} <= copied("build-serve")

"""The image build helpers: requirements from pyproject.toml and marker-correct wheel downloads."""

from __future__ import annotations

import importlib.util
import platform
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.deploy_files import REPO


def load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relative).stem, REPO / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


requirements_module = load("deploy/docker/pyproject_requirements.py")
wheels_module = load("deploy/ci/download_wheels.py")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_base_requirements_are_the_runtime_dependencies_without_prefect() -> None:
    lines = requirements_module.requirements(REPO / "pyproject.toml", [])
    assert lines == PROJECT["dependencies"]
    assert not any(line.lower().startswith("prefect") for line in lines)


def test_pipeline_extra_adds_prefect_after_the_base() -> None:
    lines = requirements_module.requirements(REPO / "pyproject.toml", ["pipeline"])
    base = PROJECT["dependencies"]
    assert lines[: len(base)] == base
    assert lines[len(base) :] == PROJECT["optional-dependencies"]["pipeline"]
    assert any(line.lower().startswith("prefect") for line in lines)


def test_unknown_extra_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"unknown extra 'gpu'.*known: .*pipeline"):
        requirements_module.requirements(REPO / "pyproject.toml", ["gpu"])
    assert requirements_module.main([str(REPO / "pyproject.toml"), "--extra", "gpu"]) == 1
    assert "unknown extra" in capsys.readouterr().err


@pytest.fixture
def restored_platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put the real platform functions back and forget pip's cached marker environment."""
    monkeypatch.setattr(platform, "python_version", platform.python_version)
    monkeypatch.setattr(platform, "python_version_tuple", platform.python_version_tuple)
    yield
    from pip._vendor.packaging import markers

    cached = getattr(markers, "_cached_default_environment", None)
    if cached is not None:
        cached.cache_clear()


@pytest.mark.usefixtures("restored_platform")
def test_markers_are_evaluated_for_the_target_python() -> None:
    from pip._vendor.packaging.markers import Marker

    old_python = Marker('python_full_version < "3.11.3"')
    wheels_module.pin_marker_version("3.11.2")
    assert old_python.evaluate()
    wheels_module.pin_marker_version("3.11.7")
    assert not old_python.evaluate()
    assert Marker('python_version == "3.11"').evaluate()


@pytest.mark.parametrize("version", ["3.11", "3.11.x", ""])
def test_target_version_must_be_complete(version: str) -> None:
    with pytest.raises(ValueError, match="full version"):
        wheels_module.pin_marker_version(version)

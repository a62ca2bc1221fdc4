"""TrainSettings: defaults, environment fallbacks and one-line validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.mirrors import DEFAULT_MIRRORS, MIRRORS_ENV, resolve_mirrors
from pipeline.settings import TrainSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MIRRORS_ENV, raising=False)
    monkeypatch.delenv("DIGITS_REGISTRY", raising=False)
    settings = TrainSettings()
    assert settings.mirrors == DEFAULT_MIRRORS
    assert settings.registry_dir == Path("models")
    assert settings.min_accuracy == 0.97 and settings.layer_sizes == (784, 128, 40, 10)


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(MIRRORS_ENV, "http://127.0.0.1:1/a/, file:///srv/mnist/")
    monkeypatch.setenv("DIGITS_REGISTRY", "/srv/models")
    settings = TrainSettings()
    assert settings.mirrors == ("http://127.0.0.1:1/a/", "file:///srv/mnist/")
    assert settings.registry_dir == Path("/srv/models")
    explicit = TrainSettings(mirrors=("http://127.0.0.1:2/",))
    assert explicit.mirrors == ("http://127.0.0.1:2/",)


def test_resolve_mirrors_rejects_non_urls():
    with pytest.raises(ValueError, match="ftp://x"):
        resolve_mirrors(["ftp://x"], {})


def test_settings_round_trip_through_json():
    settings = TrainSettings(epochs=2, mirrors=("http://127.0.0.1:1/",), registry_dir=Path("r"))
    assert TrainSettings.model_validate(settings.model_dump(mode="json")) == settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [("s3://digits/models", "s3://digits/models"), ("/srv/models", Path("/srv/models"))],
)
def test_registry_dir_is_a_directory_or_an_s3_url(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    monkeypatch.setenv("DIGITS_REGISTRY", value)
    assert TrainSettings().registry_dir == expected
    assert TrainSettings(registry_dir=value).registry_dir == expected

"""TrainSettings: defaults, environment fallbacks and one-line validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.mirrors import DEFAULT_MIRRORS, MIRRORS_ENV, resolve_mirrors
from pipeline.settings import TrainSettings, describe_validation_error


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


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"epochs": 0}, "epochs: Input should be greater than or equal to 1 (got 0)"),
        ({"lr": -1}, "lr: Input should be greater than 0"),
        ({"layer_sizes": (784, 10, 9)}, "end with 10 classes"),
        ({"loss": "hinge"}, "loss: Input should be 'cross_entropy' or 'mse'"),
        ({"min_accuracy": 1.5}, "min_accuracy"),
        ({"mirrors": ("gopher://x",)}, "gopher://x"),
        ({"file_sha256": {"a": "xyz"}}, "64 lowercase hex"),
        ({"unknown": 1}, "unknown: Extra inputs are not permitted"),
        ({"model_name": "../etc"}, "model_name: invalid model name '../etc'"),
    ],
)
def test_validation_errors_are_one_clear_line(fields, phrase):
    with pytest.raises(ValidationError) as err:
        TrainSettings(**fields)
    message = describe_validation_error(err.value)
    assert phrase in message
    assert "\n" not in message and message.startswith("invalid training settings: ")


def test_settings_round_trip_through_json():
    settings = TrainSettings(epochs=2, mirrors=("http://127.0.0.1:1/",), registry_dir=Path("r"))
    assert TrainSettings.model_validate(settings.model_dump(mode="json")) == settings

"""Flags generated from settings: one declaration per setting, errors named by flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.flags import add_flags, describe_validation_error, flag_name, overrides
from cli.main import build_parser
from pipeline.settings import TrainSettings
from service.settings import ServiceSettings


def test_flag_names_follow_the_fields() -> None:
    assert flag_name("poll_interval_s") == "--poll-interval"
    assert flag_name("enable_v2") == "--v2"
    assert flag_name("max_streams") == "--max-streams"


def test_every_server_setting_has_a_flag_and_left_out_flags_change_nothing() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, ServiceSettings, ServiceSettings.model_fields)
    assert overrides(parser.parse_args([]), ServiceSettings.model_fields) == {}
    args = parser.parse_args(["--port", "0", "--no-reflection", "--registry", "r", "--grace", "3"])
    given = overrides(args, ServiceSettings.model_fields)
    assert given == {"port": 0, "reflection": False, "registry": "r", "grace_s": 3.0}
    settings = ServiceSettings(**given)
    assert (settings.port, settings.reflection, settings.grace_s) == (0, False, 3.0)
    assert settings.registry == Path("r")  # a directory; an s3:// URL would stay text


def test_help_shows_the_fields_own_defaults_and_docstrings() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, ServiceSettings, ["poll_interval_s", "batching"])
    text = parser.format_help()
    field = ServiceSettings.model_fields["poll_interval_s"]
    assert f"(default: {field.default})" in text
    assert (field.description or "").split()[0] in text
    assert "(default: off)" in text  # batching is a bool field defaulting to False


def test_train_flags_cover_the_whole_training_configuration() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--beta2", "0.999", "--schedule", "constant", "--layer-sizes", "784,64,10",
         "--mirror", "file:///a/", "--mirror", "file:///b/", "--registry", "r"]
    )  # fmt: skip
    assert (args.beta2, args.schedule, args.layer_sizes) == (0.999, "constant", (784, 64, 10))
    assert args.mirrors == ["file:///a/", "file:///b/"] and args.registry_dir == "r"


def test_a_bad_comma_list_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "--layer-sizes", "784,x,10"])
    assert exit_info.value.code == 2
    assert "expected comma-separated int values, got '784,x,10'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"epochs": 0}, "--epochs: Input should be greater than or equal to 1 (got 0)"),
        ({"lr": -1}, "--lr: Input should be greater than 0"),
        ({"layer_sizes": (784, 10, 9)}, "end with 10 classes"),
        ({"loss": "hinge"}, "--loss: Input should be 'cross_entropy' or 'mse'"),
        ({"--min-accuracy": 1.5}, "--min-accuracy"),
        ({"mirrors": ("gopher://x",)}, "gopher://x"),
        ({"file_sha256": {"a": "xyz"}}, "64 lowercase hex"),
        ({"unknown": 1}, "--unknown: Extra inputs are not permitted"),
        ({"model_name": "../etc"}, "--model: invalid model name '../etc'"),
    ],
)
def test_validation_errors_are_one_clear_line(fields, phrase):
    with pytest.raises(ValidationError) as err:
        TrainSettings(**fields)
    message = describe_validation_error(err.value, {"model_name": "--model"})
    assert phrase in message
    assert "\n" not in message and message.count("(got ") <= len(err.value.errors())


def test_a_message_that_names_the_value_is_not_followed_by_it_again() -> None:
    with pytest.raises(ValidationError) as err:
        TrainSettings(layer_sizes=(784, 10, 9))
    message = describe_validation_error(err.value)
    assert message.count("got") == 1 and message.endswith("got 784,10,9")

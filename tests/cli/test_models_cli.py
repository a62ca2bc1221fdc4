"""`digits models ...` end to end: tables, --json, alias moves, gc and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.exits import ExitCode
from cli.main import main
from registry import Registry
from tests.helpers.registry_data import flip_byte, toy_params

Run = tuple[int, str, str]
Digits = Callable[..., Run]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three published versions, built once (publishing fsyncs) and copied for each test."""
    registry = Registry(tmp_path_factory.mktemp("template") / "models")
    for seed in range(3):
        manifest = {
            "seed": seed,
            "loss": "cross_entropy",
            "parent_version": seed or None,
            "metrics": {"accuracy": 0.9 + seed / 100, "confusion_matrix": [[5, 1], [0, 6]]},
        }
        registry.publish("digits", toy_params(seed), manifest)
    return registry.root


@pytest.fixture
def registry(template: Path, tmp_path: Path) -> Registry:
    shutil.copytree(template, tmp_path / "models")
    return Registry(tmp_path / "models")


@pytest.fixture
def digits(capsys: pytest.CaptureFixture[str]) -> Digits:
    """Run `digits ARGS...` in-process; return (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> Run:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_list_prints_a_table_of_versions_with_aliases(registry: Registry, digits: Digits) -> None:
    registry.set_alias("digits", "production", 2)
    code, out, err = digits("models", "--registry", registry.root, "list")
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == ["VERSION", "CREATED", "ACCURACY", "LAYERS", "PARENT", "ALIASES"]
    cells = [row.split() for row in rows]
    assert [c[0] for c in cells] == ["1", "2", "3"]
    assert [c[2] for c in cells] == ["0.9000", "0.9100", "0.9200"]
    assert [c[3] for c in cells] == ["784-128-40-10"] * 3
    assert [c[4] for c in cells] == ["-", "1", "2"]
    assert [c[5] for c in cells] == ["-", "production", "-"]


def test_json_options_work_before_or_after_the_action(registry: Registry, digits: Digits) -> None:
    registry.set_alias("digits", "staging", 3)
    code, before, _ = digits("models", "--json", "--registry", registry.root, "list")
    code_after, after, _ = digits("models", "list", "--json", "--registry", registry.root)
    assert code == code_after == 0
    document = json.loads(before)
    assert document == json.loads(after)
    assert document["model"] == "digits" and document["aliases"] == {"staging": 3}
    assert [v["version"] for v in document["versions"]] == [1, 2, 3]
    assert document["versions"][2]["aliases"] == ["staging"]
    assert document["versions"][0]["layer_sizes"] == [784, 128, 40, 10]


def test_registry_defaults_to_the_environment_variable(
    registry: Registry,
    digits: Digits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.publish("other", toy_params(), {"seed": 9})
    monkeypatch.setenv("DIGITS_REGISTRY", str(registry.root))
    code, out, _ = digits("models", "list", "--model", "other", "--json")
    assert code == 0 and [v["version"] for v in json.loads(out)["versions"]] == [1]


def test_show_verifies_and_prints_the_manifest(registry: Registry, digits: Digits) -> None:
    registry.set_alias("digits", "production", 2)
    code, out, _ = digits("models", "--registry", registry.root, "show")  # production
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert fields["version"] == "2" and fields["aliases"] == "production"
    assert fields["integrity"].startswith("ok")
    assert "confusion_matrix=(2x2 table, see --json)" in fields["metrics"]
    assert "weights.safetensors" in out.split("\n\n")[1]

    code, out, _ = digits("models", "--registry", registry.root, "show", "latest", "--json")
    document = json.loads(out)
    assert code == 0 and document["version"] == 3 and document["integrity"] == "ok"
    assert document["manifest"] == registry.get("digits", 3).manifest


def test_promote_and_rollback_move_the_alias(registry: Registry, digits: Digits) -> None:
    root = registry.root
    assert digits("models", "--registry", root, "promote", "2")[:2] == (
        0,
        "digits@production: (unset) -> 2\n",
    )
    assert digits("models", "--registry", root, "promote", "latest")[1] == (
        "digits@production: 2 -> 3\n"
    )
    code, out, _ = digits("models", "--registry", root, "promote", "1", "--alias", "staging")
    assert code == 0 and registry.aliases("digits") == {"production": 3, "staging": 1}

    code, out, _ = digits("models", "--registry", root, "rollback", "--json")
    assert code == 0 and json.loads(out) == {"alias": "production", "previous": 3, "version": 2}
    assert registry.resolve("digits") == 2


def test_gc_deletes_old_unaliased_versions(registry: Registry, digits: Digits) -> None:
    registry.set_alias("digits", "production", 1)
    code, out, _ = digits("models", "--registry", registry.root, "gc", "--keep", "1", "--json")
    assert code == 0 and json.loads(out) == {"deleted": [2], "kept": [1, 3]}
    assert [v.version for v in registry.list_versions("digits")] == [1, 3]
    code, out, _ = digits("models", "--registry", registry.root, "gc", "--keep", "1")
    assert (code, out) == (0, "deleted: nothing; kept: 1, 3\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "9"], "model 'digits' has no version 9"),
        (["show", "staging"], "no alias 'staging'"),
        (["--model", "../etc", "list"], "invalid model name '../etc'"),
        (["--model", "nope", "list"], "model 'nope' not found"),
        (["promote", "2", "--alias", "latest"], "'latest' is reserved"),
        (["promote", "7"], "no version 7"),
        (["rollback"], "no alias 'production'"),
    ],
)
def test_errors_are_one_line_with_exit_code_1(
    registry: Registry,
    digits: Digits,
    args: list[str],
    message: str,
) -> None:
    code, out, err = digits("models", "--registry", registry.root, *args)
    assert code == 1 and out == ""
    assert err.startswith("digits models: error: ") and message in err
    assert err.count("\n") == 1


def test_corrupted_version_exits_3_naming_the_file(registry: Registry, digits: Digits) -> None:
    flip_byte(registry.root / "digits" / "2" / "weights.safetensors", -1)
    code, out, err = digits("models", "--registry", registry.root, "show", "2")
    assert code == ExitCode.INTEGRITY == 4 and out == ""
    assert "integrity check failed" in err and "2/weights.safetensors" in err
    assert digits("models", "--registry", registry.root, "show", "3")[0] == 0


def test_promote_refuses_a_corrupt_version_with_exit_4(registry: Registry, digits: Digits) -> None:
    registry.set_alias("digits", "production", 1)
    flip_byte(registry.root / "digits" / "2" / "weights.safetensors", -1)
    code, out, err = digits("models", "--registry", registry.root, "promote", "2")
    assert code == ExitCode.INTEGRITY and out == "" and err.count("\n") == 1
    assert "refusing to promote 'production'" in err and "2/weights.safetensors" in err
    assert registry.aliases("digits") == {"production": 1}  # not moved


def test_rollback_refuses_a_corrupt_previous_version(registry: Registry, digits: Digits) -> None:
    registry.set_alias("digits", "production", 1)
    registry.set_alias("digits", "production", 3)
    flip_byte(registry.root / "digits" / "1" / "weights.safetensors", -1)
    code, out, err = digits("models", "--registry", registry.root, "rollback")
    assert code == ExitCode.INTEGRITY and out == "" and err.count("\n") == 1
    assert "refusing to roll back 'production'" in err and "version 1" in err
    assert registry.aliases("digits") == {"production": 3}


@pytest.mark.parametrize("keep", ["0", "-1", "two"])
def test_gc_bad_keep_is_a_usage_error(registry: Registry, digits: Digits, keep: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        digits("models", "--registry", registry.root, "gc", "--keep", keep)
    assert exit_info.value.code == ExitCode.USAGE
    assert len(registry.list_versions("digits")) == 3


def test_help_lists_the_exit_codes_of_exits_py(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["models", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert f"{int(ExitCode.INTEGRITY)} integrity check failed" in helped
    assert f"{int(ExitCode.USAGE)} usage" in helped


def test_list_on_a_fresh_registry_is_empty_not_an_error(tmp_path: Path, digits: Digits) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = digits("models", "--registry", tmp_path / "empty", "list")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split()[0] == "VERSION" and "no versions of 'digits' yet" in out
    code, out, err = digits("models", "--registry", tmp_path / "empty", "list", "--json")
    assert (code, err) == (0, "") and json.loads(out)["versions"] == []


def test_missing_required_option_is_a_usage_error(registry: Registry, digits: Digits) -> None:
    with pytest.raises(SystemExit) as exit_info:
        digits("models", "--registry", registry.root, "gc")
    assert exit_info.value.code == 2


@pytest.mark.integration
def test_installed_digits_command_lists_models(registry: Registry) -> None:
    executable = Path(sys.executable).parent / "digits"
    env = {**os.environ, "DIGITS_REGISTRY": str(registry.root)}
    listed = subprocess.run(
        [executable, "models", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split()[0] == "VERSION"
    assert len(listed.stdout.splitlines()) == 4
    failed = subprocess.run(
        [executable, "models", "show", "42"], env=env, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1 and "no version 42" in failed.stderr


@pytest.fixture
def dangling(registry: Registry) -> Registry:
    """production: 1 -> 2 -> 3, staging: 2; then version 3's directory is removed by hand."""
    for version in (1, 2, 3):
        registry.set_alias("digits", "production", version)
    registry.set_alias("digits", "staging", 2)
    shutil.rmtree(registry.root / "digits" / "3")
    return registry


def test_list_shows_a_dangling_alias_in_text_and_json(dangling: Registry, digits: Digits) -> None:
    code, out, err = digits("models", "--registry", dangling.root, "list")
    assert (code, err) == (0, "")
    assert "production -> 3: DANGLING, version 3 no longer exists" in out
    assert "digits models rollback --alias production" in out
    assert "staging -> 2" not in out
    code, out, _ = digits("models", "--registry", dangling.root, "list", "--json")
    document = json.loads(out)
    assert document["dangling_aliases"] == {"production": 3}
    assert document["aliases"] == {"production": 3, "staging": 2}


def test_show_names_a_dangling_alias(dangling: Registry, digits: Digits) -> None:
    code, out, _ = digits("models", "--registry", dangling.root, "show", "2")
    assert code == 0 and "production -> 3 (deleted)" in out
    code, out, _ = digits("models", "--registry", dangling.root, "show", "2", "--json")
    assert json.loads(out)["dangling_aliases"] == {"production": 3}
    code, _, err = digits("models", "--registry", dangling.root, "show")  # default: production
    assert code != 0 and "dangling alias" in err and "digits models rollback" in err


def test_recovery_commands_work_from_a_dangling_alias(dangling: Registry, digits: Digits) -> None:
    root = dangling.root
    code, out, err = digits("models", "--registry", root, "rollback", "--json")
    assert code == 0, err
    assert json.loads(out) == {"alias": "production", "previous": 3, "version": 2}
    shutil.rmtree(root / "digits" / "2")  # dangling again, and its history has only 1 left
    code, out, err = digits("models", "--registry", root, "gc", "--keep", "1", "--json")
    assert code == 0, err
    code, out, _ = digits("models", "--registry", root, "promote", "1")
    assert (code, out) == (0, "digits@production: 2 -> 1\n")


@pytest.mark.integration
def test_list_on_a_fresh_bucket_is_empty_not_an_error(s3_url: str, digits: Digits) -> None:
    code, out, err = digits("models", "--registry", s3_url, "list", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["versions"] == [] and json.loads(out)["registry"] == s3_url
    code, out, err = digits("models", "--registry", s3_url, "list")
    assert (code, err) == (0, "") and f"no versions of 'digits' yet in {s3_url}" in out

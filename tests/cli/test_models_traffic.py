"""`digits models canary|shadow|history|rollback --to` end to end, in-process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.main import main
from registry import Registry
from tests.helpers.registry_data import toy_params

Digits = Callable[..., tuple[int, str, str]]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "models")
    for seed in range(3):
        reg.publish("digits", toy_params(seed), {"seed": seed})
    return reg


@pytest.fixture
def digits(registry: Registry, capsys: pytest.CaptureFixture[str]) -> Digits:
    """Run `digits models ACTION ... --registry R`; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["models", *args, "--registry", str(registry.root)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_canary_start_step_promote_and_history(registry: Registry, digits: Digits) -> None:
    assert digits("promote", "1", "--reason", "launch")[0] == 0
    code, out, err = digits("canary", "2", "--percent", "10", "--reason", "try it")
    assert (code, err) == (0, "")
    assert out.strip() == "digits@production: version 1, canary 2 at 10%"
    assert digits("canary", "2", "--percent", "50")[0] == 0
    code, out, _ = digits("canary", "--promote")
    assert out.strip() == "digits@production: version 2"
    code, out, _ = digits("history")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["TIME", "(UTC)", "ALIAS", "EVENT"]
    assert [row.split()[2:4] for row in rows] == [
        ["promote", "1"], ["canary-start", "1"], ["canary-step", "1"], ["canary-promote", "2"],
    ]  # fmt: skip
    assert "canary 2 at 10%" in rows[1] and rows[1].rstrip().endswith("try it")
    code, out, _ = digits("history", "--alias", "production", "--json")
    events = json.loads(out)["events"]
    assert [e["event"] for e in events][-1] == "canary-promote"
    assert all({"time", "actor", "reason", "alias", "version"} <= set(e) for e in events)


def test_canary_abort_and_shadow(registry: Registry, digits: Digits) -> None:
    digits("promote", "1")
    digits("canary", "3", "--percent", "30")
    code, out, _ = digits("shadow", "2", "--percent", "20", "--json")
    assert code == 0
    assert json.loads(out) == {
        "alias": "production", "version": 1,
        "canary": {"version": 3, "percent": 30.0}, "shadow": {"version": 2, "percent": 20.0},
    }  # fmt: skip
    assert digits("canary", "--abort")[1].strip() == "digits@production: version 1, shadow 2 at 20%"
    assert digits("shadow", "--stop")[1].strip() == "digits@production: version 1"
    assert registry.resolve("digits") == 1


def test_rollback_to_a_time(registry: Registry, digits: Digits) -> None:
    digits("promote", "1")
    time.sleep(0.002)
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.002)
    digits("promote", "3")
    code, out, err = digits("rollback", "--to", moment)
    assert (code, err) == (0, "")
    assert out.strip() == f"digits@production: 3 -> 1 (as at {moment})"
    assert registry.resolve("digits") == 1
    assert digits("history")[1].splitlines()[-1].split()[2:4] == ["rollback", "1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rollback", "--to", "yesterday"), "not an ISO 8601 time: 'yesterday'"),
        (("rollback", "--to", "2000-01-01T00:00:00Z"), "held no recorded version"),
        (("canary", "2"), "give VERSION and --percent P"),
        (("canary", "2", "--percent", "150"), "percent must be in (0, 100]"),
        (("canary", "--abort"), "has no canary"),
        (("history", "--alias", "staging"), "has no alias 'staging'"),
    ],
)
def test_bad_requests_get_one_line_errors(
    digits: Digits, registry: Registry, args: tuple[str, ...], message: str
) -> None:
    digits("promote", "1")
    code, out, err = digits(*args)
    assert code == 1 and out == ""
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert registry.resolve("digits") == 1

"""`digits rollout` on two real replicas under load: a bad canary rolls back, a good one lands."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from registry import Registry
from tests.helpers.loaded_replicas import metrics_urls, replicas_under_load
from tests.helpers.servers import Running
from tests.helpers.toy_models import MODEL, random_images, toy_params

pytestmark = pytest.mark.integration

POLL_S = 0.1


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "models")
    reg.publish(MODEL, toy_params(1), {"seed": 1})
    reg.set_alias(MODEL, "production", 1, reason="launch")
    return reg


@pytest.fixture
def replicas(registry: Registry) -> Iterator[list[Running]]:
    """Two replicas with /metrics on free ports, answering a steady stream of requests."""
    with replicas_under_load(registry, poll_interval_s=POLL_S) as servers:
        yield servers


def _publish(registry: Registry, params: dict[str, np.ndarray]) -> int:
    return registry.publish(MODEL, params, {"seed": 1}).version


def _rollout(replicas: list[Running], registry: Registry, version: int,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # fmt: skip
    urls = metrics_urls(replicas)
    code = main([
        "rollout", str(version), "--registry", str(registry.root), "--metrics", *urls,
        "--steps", "20,50,100", "--interval", "800ms", "--min-requests", "10",
        # Latency is not what these tests judge, and a shared CI machine's p99 is noisy.
        "--max-p99-ratio", "20", "--json",
    ])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def _events(registry: Registry) -> list[tuple[str, int]]:
    record = registry.alias_record(MODEL, "production")
    assert record is not None
    return [(e["event"], e.get("canary", {}).get("percent", 0)) for e in record["events"]]


def test_a_canary_that_disagrees_with_production_is_rolled_back_at_the_first_step(
    registry: Registry, replicas: list[Running], capsys: pytest.CaptureFixture[str]
) -> None:
    params = toy_params(1)
    for key in ("W3", "b3"):  # shift the output rows: every label becomes label + 1 (mod 10)
        params[key] = np.roll(params[key], 1, axis=0)
    bad = _publish(registry, params)
    code, result = _rollout(replicas, registry, bad, capsys)
    assert code == 6 and result["outcome"] == "aborted", result
    assert len(result["steps"]) == 1, result
    assert any("agreement" in failure for failure in result["steps"][0]["failures"]), result
    assert result["steps"][0]["agreement"] < 0.05, result
    assert registry.resolve(MODEL) == 1  # production never changed
    record = registry.alias_record(MODEL, "production")
    assert record is not None and "canary" not in record and "shadow" not in record
    assert _events(registry) == [
        ("promote", 0), ("shadow-start", 0), ("canary-start", 20), ("canary-abort", 0),
        ("shadow-stop", 0),
    ]  # fmt: skip
    assert "agreement" in record["events"][-2]["reason"]


def test_a_good_canary_is_stepped_to_100_percent_and_promoted(
    registry: Registry, replicas: list[Running], capsys: pytest.CaptureFixture[str]
) -> None:
    params = toy_params(1)
    noise = np.random.default_rng(9)
    params = {k: v + np.float32(1e-5) * noise.standard_normal(v.shape, np.float32)
              for k, v in params.items()}  # fmt: skip
    good = _publish(registry, params)
    code, result = _rollout(replicas, registry, good, capsys)
    assert code == 0 and result["outcome"] == "promoted", result
    assert [s["percent"] for s in result["steps"]] == [20, 50, 100]
    assert all(s["agreement"] >= 0.95 for s in result["steps"])
    assert registry.resolve(MODEL) == good
    assert _events(registry) == [
        ("promote", 0), ("shadow-start", 0), ("canary-start", 20), ("canary-step", 50),
        ("canary-step", 100), ("canary-promote", 0),
    ]  # fmt: skip
    time.sleep(3 * POLL_S)
    for replica in replicas:  # every replica serves it after its next poll
        assert replica.client.predict(random_images(1)).version == good

"""rollout_flow under a real Prefect server, and train_flow handing a challenger to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.canary import Guards
from pipeline.flows import train_flow
from pipeline.rollout import rollout_flow
from pipeline.settings import TrainSettings
from registry import Registry
from tests.helpers.loaded_replicas import metrics_urls, replicas_under_load
from tests.helpers.toy_models import MODEL, toy_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def _events(registry: Registry) -> list[dict[str, Any]]:
    record = registry.alias_record(MODEL, "production")
    assert record is not None
    return list(record["events"])


def test_rollout_flow_rolls_back_a_bad_canary_and_names_the_flow_run(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.publish(MODEL, toy_params(1), {})
    registry.set_alias(MODEL, "production", 1)
    params = toy_params(1)
    params["W3"], params["b3"] = np.roll(params["W3"], 1, axis=0), np.roll(params["b3"], 1, axis=0)
    bad = registry.publish(MODEL, params, {}).version
    with replicas_under_load(registry) as servers:
        result = rollout_flow(bad, metrics_urls(servers), registry.root, MODEL, [20.0, 100.0],
                              0.7, Guards(max_p99_ratio=20.0, min_requests=10))  # fmt: skip
    assert result["outcome"] == "aborted" and len(result["steps"]) == 1
    assert registry.resolve(MODEL) == 1
    rollout_events = _events(registry)[1:]
    assert [e["event"] for e in rollout_events] == [
        "shadow-start", "canary-start", "canary-abort", "shadow-stop",
    ]  # fmt: skip
    assert all(e["actor"].startswith("prefect flow-run ") for e in rollout_events)


def test_train_flow_hands_a_promoted_challenger_to_a_rollout(
    tmp_path: Path, synthetic_mnist: tuple[Path, dict[str, str]]
) -> None:
    data_dir, digests = synthetic_mnist
    base: dict[str, Any] = {
        "data_dir": data_dir, "offline": True, "file_sha256": digests, "mirrors": (),
        "registry_dir": tmp_path / "models", "model_name": MODEL, "min_accuracy": 0.0,
    }  # fmt: skip
    first = train_flow(TrainSettings(**base, epochs=1, lr=1e-5))
    assert first["promoted"] and "rollout" not in first  # no replicas configured: promoted
    registry = Registry(tmp_path / "models")
    with replicas_under_load(registry) as servers:
        settings = TrainSettings(**base, epochs=3, lr=5e-3, batch_size=32,
                                 rollout_metrics=tuple(metrics_urls(servers)),
                                 rollout_steps=(50.0, 100.0), rollout_interval_s=0.7)  # fmt: skip
        second = train_flow(settings)
    # The gate would promote it; the rollout decides. Either way the history shows the canary.
    assert second["rollout"] in ("promoted", "aborted")
    assert second["promoted"] == (second["rollout"] == "promoted")
    assert registry.resolve(MODEL) == (2 if second["promoted"] else 1)
    kinds = [e["event"] for e in _events(registry)]
    assert kinds[:3] == ["promote", "shadow-start", "canary-start"]
    assert kinds[-1] == ("canary-promote" if second["promoted"] else "shadow-stop")

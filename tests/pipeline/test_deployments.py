"""Scheduled retraining: the prefect.yaml deployment and the one `digits schedule` serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import load_flow_from_entrypoint

from pipeline.schedule import build_deployment
from pipeline.settings import TrainSettings

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_deploys_train_flow_with_valid_parameters(monkeypatch: pytest.MonkeyPatch):
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = config["deployments"]
    monkeypatch.chdir(REPO)  # entrypoints are relative to the project root
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    assert flow.name == "digits-train"
    settings = TrainSettings(**deployment["parameters"]["settings"])
    assert settings.min_accuracy == 0.97 and settings.registry_dir == Path("models")
    for schedule in deployment["schedules"]:
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert deployment["work_pool"]["name"] == "digits-process"
    assert "training" in deployment["tags"]
    # One run at a time, a run due meanwhile waits (the form `prefect deploy` accepts).
    limit = ConcurrencyLimitConfig(**deployment["concurrency_limit"])
    assert (limit.limit, limit.collision_strategy) == (1, ConcurrencyLimitStrategy.ENQUEUE)
    assert settings.stale_after_s == 6 * 3600


def test_build_deployment_is_one_at_a_time_in_an_explicit_zone():
    deployment = build_deployment(TrainSettings(), "0 3 * * *", timezone="Europe/Berlin")
    assert deployment.schedules[0].schedule.timezone == "Europe/Berlin"
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
    cancel = build_deployment(TrainSettings(), "0 3 * * *", collision="cancel")
    assert cancel.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    with pytest.raises(ValueError, match="collision must be one of"):
        build_deployment(TrainSettings(), "0 3 * * *", collision="drop")


def test_build_deployment_rejects_bad_cron():
    with pytest.raises(ValueError, match="invalid schedule '61 \\* \\* \\* \\*'"):
        build_deployment(TrainSettings(), "61 * * * *")


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_schedule_registers_a_cron_deployment_with_the_settings(tmp_path: Path):
    from prefect import get_client

    settings = TrainSettings(epochs=3, registry_dir=tmp_path / "models", mirrors=("file:///m/",))
    deployment_id = build_deployment(settings, "0 3 * * *", "nightly-test").apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.name == "nightly-test"
    assert [s.schedule.cron for s in stored.schedules] == ["0 3 * * *"]
    assert TrainSettings(**stored.parameters["settings"]) == settings

"""Scheduled retraining: the prefect.yaml deployment and the one `digits schedule` serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
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

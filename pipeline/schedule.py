"""Scheduled retraining: `train_flow` as a cron-scheduled Prefect deployment served here."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import get_current_settings
from pydantic import ValidationError

from pipeline.flows import train_flow
from pipeline.settings import TrainSettings

__all__ = ["DEFAULT_DEPLOYMENT", "api_url", "build_deployment", "serve_deployment"]

DEFAULT_DEPLOYMENT = "digits-retrain"


def api_url() -> str | None:
    """The Prefect server this process talks to (PREFECT_API_URL or the active profile)."""
    url = get_current_settings().api.url
    return str(url) if url else None


def build_deployment(
    settings: TrainSettings, cron: str, name: str = DEFAULT_DEPLOYMENT, timezone: str = "UTC"
) -> Any:
    """A RunnerDeployment of train_flow on ``cron``; ValueError for a bad cron or timezone."""
    try:
        schedule = CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as err:  # many lines; keep the first message only
        detail = err.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(f"invalid schedule {cron!r} ({timezone}): {detail}") from None
    return train_flow.to_deployment(
        name=name,
        schedule=schedule,  # type: ignore[arg-type]  # accepted at run time; typed as Schedule
        parameters={"settings": settings.model_dump(mode="json")},
        tags=["digits", "training"],
        description="Retrain, gate and publish the digits model on a schedule.",
    )


def serve_deployment(deployment: Any) -> None:
    """Register the deployment and run its scheduled flow runs until interrupted."""
    from prefect import serve

    serve(deployment)

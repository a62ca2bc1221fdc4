"""Scheduled retraining: `train_flow` as a cron-scheduled Prefect deployment served here."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import get_current_settings
from pydantic import ValidationError

from pipeline.flows import train_flow
from pipeline.settings import TrainSettings

__all__ = [
    "COLLISION_STRATEGIES",
    "DEFAULT_DEPLOYMENT",
    "api_url",
    "build_deployment",
    "serve_deployment",
]

DEFAULT_DEPLOYMENT = "digits-retrain"
# What happens to a run due while another run of the deployment is active: "enqueue" waits
# (the default: the night's retraining still happens, after the long one), "cancel" drops it.
COLLISION_STRATEGIES = {
    "enqueue": ConcurrencyLimitStrategy.ENQUEUE,
    "cancel": ConcurrencyLimitStrategy.CANCEL_NEW,
}


def api_url() -> str | None:
    """The Prefect server this process talks to (PREFECT_API_URL or the active profile)."""
    url = get_current_settings().api.url
    return str(url) if url else None


def build_deployment(
    settings: TrainSettings,
    cron: str,
    name: str = DEFAULT_DEPLOYMENT,
    timezone: str = "UTC",
    collision: str = "enqueue",
) -> Any:
    """A RunnerDeployment of train_flow on ``cron`` in ``timezone``, one run at a time.

    The cron is evaluated in ``timezone`` (an IANA name, UTC by default), so a DST change
    neither skips nor doubles a night (PrefectHQ/prefect#7381). The deployment's concurrency
    limit is 1; ``collision`` says what a run due meanwhile does ("enqueue": waits,
    "cancel": cancelled). ValueError for a bad cron, timezone or collision strategy.
    """
    if collision not in COLLISION_STRATEGIES:
        raise ValueError(
            f"collision must be one of {sorted(COLLISION_STRATEGIES)}, got {collision!r}"
        )
    try:
        schedule = CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as err:  # many lines; keep the first message only
        detail = err.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(f"invalid schedule {cron!r} ({timezone}): {detail}") from None
    return train_flow.to_deployment(
        name=name,
        schedule=schedule,  # type: ignore[arg-type]  # accepted at run time; typed as Schedule
        parameters={"settings": settings.model_dump(mode="json")},
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=COLLISION_STRATEGIES[collision]
        ),
        tags=["digits", "training"],
        description="Retrain, gate and publish the digits model on a schedule.",
    )


def serve_deployment(deployment: Any) -> None:
    """Register the deployment and run its scheduled flow runs until interrupted."""
    from prefect import serve

    serve(deployment)

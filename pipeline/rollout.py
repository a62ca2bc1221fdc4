"""Prefect flow `rollout_flow`: a canary rollout (pipeline/canary.py) as one thin task.

The retraining flow hands a gated challenger here instead of promoting it when
``TrainSettings.rollout_metrics`` is set; the alias history names the flow run as the actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from pipeline.canary import Guards, run_rollout
from registry import Registry

__all__ = ["rollout_flow"]


def _actor() -> str:
    """The flow run this change comes from, for the alias history."""
    return f"prefect flow-run {flow_run.get_name()} ({flow_run.get_id()})"


# No retries: a rollout that failed has aborted its canary; rerunning it is a decision.
@task
def rollout(
    registry_dir: str | Path, model_name: str, version: int, metrics_urls: list[str],
    steps: list[float], interval_s: float, guards: Guards, actor: str,
) -> dict[str, Any]:  # fmt: skip
    logger = get_run_logger()
    result = run_rollout(
        Registry(registry_dir), model_name, version, metrics_urls, steps=steps,
        interval_s=interval_s, guards=guards, actor=actor, log=logger.info,
    )  # fmt: skip
    return {"version": result.version, "production": result.production,
            "outcome": result.outcome, "steps": [s.describe() for s in result.steps]}  # fmt: skip


@flow(name="digits-rollout")
def rollout_flow(
    version: int,
    metrics_urls: list[str],
    registry_dir: str | Path = "models",
    model_name: str = "digits",
    steps: list[float] | None = None,
    interval_s: float = 60.0,
    guards: Guards | None = None,
) -> dict[str, Any]:
    """Step ``version`` as a canary through ``steps`` percents; promote it or roll it back."""
    return rollout(
        registry_dir, model_name, version, metrics_urls, steps or [10.0, 50.0, 100.0],
        interval_s, guards or Guards(), _actor(),
    )  # fmt: skip

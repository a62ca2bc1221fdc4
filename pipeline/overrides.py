"""Run-time overrides of a deployment's settings, and the staleness rule for late runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pipeline.settings import TrainSettings

__all__ = ["is_stale", "merge_settings"]


def merge_settings(
    deployment: Mapping[str, Any] | None,
    settings: TrainSettings | None,
    fields: Mapping[str, Any],
) -> TrainSettings:
    """The run's settings: the deployment's, then the fields the run's ``settings`` set, then
    the per-field parameters that are not None.

    Prefect replaces a whole parameter when a run overrides it, so ``settings={"epochs": 1}``
    would otherwise reset every other field (the registry too). Pydantic's ``model_fields_set``
    tells which fields the run named. Raises pydantic.ValidationError for bad values.
    """
    merged: dict[str, Any] = dict(deployment or {})
    if settings is not None:
        named = settings.model_fields_set if deployment is not None else None
        merged.update(settings.model_dump(include=named))
    merged.update({key: value for key, value in fields.items() if value is not None})
    return TrainSettings(**merged)


def is_stale(scheduled: datetime | None, now: datetime, stale_after_s: float) -> bool:
    """True when a run starts more than ``stale_after_s`` after its scheduled slot."""
    return scheduled is not None and now - scheduled > timedelta(seconds=stale_after_s)

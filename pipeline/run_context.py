"""What a flow run knows about itself from Prefect: its deployment, its slot, its name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_client
from prefect.context import FlowRunContext

__all__ = ["deployment_settings", "name_run", "scheduled_slot"]


def deployment_settings() -> dict[str, Any] | None:
    """The ``settings`` parameter stored on this run's deployment (None outside deployments)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        return None
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(context.flow_run.deployment_id)
    stored = deployment.parameters.get("settings")
    return dict(stored) if isinstance(stored, dict) else {}


def scheduled_slot() -> datetime | None:
    """When a scheduler-created run was due (None for runs started by hand or from code)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or not context.flow_run.auto_scheduled:
        return None
    expected = context.flow_run.expected_start_time
    return None if expected is None else datetime.fromtimestamp(expected.timestamp(), UTC)


def name_run(name: str) -> None:
    """Rename the current flow run so the run list says what it did (no-op outside a run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, name=name)

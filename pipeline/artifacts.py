"""Prefect-side reporting: per-epoch run-log lines, a progress artifact and a metrics artifact."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from pipeline.gate import GateDecision
from pipeline.report import metrics_markdown

__all__ = ["EpochReporter", "publish_metrics"]


class EpochReporter:
    """``on_epoch`` callback for core.train.fit: logs each epoch and advances a progress bar."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any], epochs: int) -> None:
        self._logger = logger
        self._epochs = epochs
        artifact_id = create_progress_artifact(
            progress=0.0, key="digits-training-progress", description="Training epochs done (%)"
        )
        assert isinstance(artifact_id, UUID)  # called from a sync flow, so not a coroutine
        self._artifact_id = artifact_id

    def __call__(self, record: Mapping[str, float]) -> None:
        epoch = int(record["epoch"])
        extra = "".join(
            f" val_{name} {record['val_' + name]:.4f}"
            for name in ("loss", "accuracy")
            if "val_" + name in record
        )
        self._logger.info(
            "epoch %d/%d: loss %.4f accuracy %.4f%s (%.1f s)",
            epoch,
            self._epochs,
            record["loss"],
            record["accuracy"],
            extra,
            record.get("seconds", 0.0),
        )
        update_progress_artifact(self._artifact_id, progress=100.0 * epoch / self._epochs)


def publish_metrics(metrics: Mapping[str, Any], decision: GateDecision) -> None:
    """Attach the test metrics and the gate decision to the flow run as a markdown artifact."""
    create_markdown_artifact(
        markdown=metrics_markdown(metrics, decision),
        key="digits-test-metrics",
        description="Test-set metrics and the champion/challenger decision",
    )

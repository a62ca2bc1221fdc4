"""Prefect-side reporting: epoch log lines and progress, metrics, summary, plots and trials."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from pipeline.gate import GateDecision
from pipeline.report import metrics_markdown, summary_markdown
from registry.storage import is_object_store

__all__ = ["EpochReporter", "link_files", "publish_metrics", "publish_summary", "trial_table"]


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


def publish_summary(summary: Mapping[str, Any]) -> None:
    """The run's outcome (version, alias, why) as a markdown artifact, newest per key."""
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key="digits-run-summary",
        description="What this run published and where production points now",
    )


def link_files(location: str, names: Mapping[str, str]) -> None:
    """Link artifacts to files stored with a published version (plots), keyed by file name.

    ``location`` is the version's directory (file:// links) or its s3:// URL.
    """
    for file_name, text in names.items():
        if is_object_store(location):
            link = f"{location.rstrip('/')}/{file_name}"
        elif (path := Path(location) / file_name).is_file():
            link = path.resolve().as_uri()
        else:
            continue
        create_link_artifact(
            link=link,
            link_text=text,
            key="digits-" + file_name.removesuffix(".png").replace("_", "-"),
        )


def trial_table(rows: Sequence[Mapping[str, Any]]) -> None:
    """Every trial of a sweep: settings, validation accuracy and loss, seconds, worker, rank."""
    create_table_artifact(
        table=[dict(row) for row in rows],
        key="digits-sweep-trials",
        description="Sweep trials ranked by validation accuracy",
    )

"""Run summary: the small dict a training run returns, its one-paragraph text and metrics table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.gate import GateDecision
from pipeline.settings import TrainSettings
from pipeline.steps import HEADLINE_METRICS, Trained

__all__ = ["describe", "metrics_markdown", "summary"]


def summary(
    settings: TrainSettings,
    version: int,
    metrics: Mapping[str, Any],
    decision: GateDecision,
    trained: Trained,
) -> dict[str, Any]:
    """JSON-ready result of a published run (what `digits train --json` prints)."""
    return {
        "published": True,
        "model": settings.model_name,
        "version": version,
        "promoted": decision.promote,
        "reason": decision.reason,
        "champion_version": decision.champion_version,
        "champion_accuracy": decision.champion_accuracy,
        "metrics": {name: float(metrics[name]) for name in HEADLINE_METRICS},
        "per_class_accuracy": list(metrics["per_class_accuracy"]),
        "epochs": len(trained.history),
        "train_seconds": round(trained.seconds, 3),
        "registry": str(settings.registry_dir),
    }


def describe(result: Mapping[str, Any]) -> str:
    """Human summary, e.g. ``published digits v3 (promoted to production): accuracy 0.9812 ...``."""
    state = "promoted to production" if result["promoted"] else "not promoted"
    metrics = result["metrics"]
    figures = ", ".join(f"{name} {metrics[name]:.4f}" for name in HEADLINE_METRICS)
    return (
        f"published {result['model']} v{result['version']} ({state}) in {result['registry']}\n"
        f"  test: {figures}\n"
        f"  gate: {result['reason']}\n"
        f"  trained {result['epochs']} epoch(s) in {result['train_seconds']:.1f} s"
    )


def metrics_markdown(metrics: Mapping[str, Any], decision: GateDecision) -> str:
    """Markdown table of the test metrics, per-class accuracy and the gate decision."""
    verdict = "promote" if decision.promote else "publish only" if decision.publish else "reject"
    lines = ["# Test metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {float(metrics[name]):.4f} |" for name in HEADLINE_METRICS]
    lines += ["", "| digit | accuracy |", "|---|---|"]
    lines += [f"| {d} | {acc:.4f} |" for d, acc in enumerate(metrics["per_class_accuracy"])]
    lines += ["", f"**Gate: {verdict}.** {decision.reason}"]
    return "\n".join(lines)

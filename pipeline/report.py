"""Run summary: the small dict a training run returns, its one-paragraph text and markdown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.gate import GateDecision
from pipeline.settings import TrainSettings
from pipeline.steps import HEADLINE_METRICS, Trained
from registry import DEFAULT_ALIAS

__all__ = ["describe", "metrics_markdown", "run_name", "skipped", "summary", "summary_markdown"]


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
        "alias": DEFAULT_ALIAS if decision.promote else None,
        "reason": decision.reason,
        "champion_version": decision.champion_version,
        "champion_accuracy": decision.champion_accuracy,
        "metrics": {name: float(metrics[name]) for name in HEADLINE_METRICS},
        "per_class_accuracy": list(metrics["per_class_accuracy"]),
        "epochs": len(trained.history),
        "train_seconds": round(trained.seconds, 3),
        "threads": trained.threads,
        "registry": str(settings.registry_dir),
    }


def skipped(settings: TrainSettings, reason: str, **fields: Any) -> dict[str, Any]:
    """Result of a run that published nothing on purpose (identical model, stale slot)."""
    return {
        "published": False,
        "skipped": True,
        "model": settings.model_name,
        "reason": reason,
        "registry": str(settings.registry_dir),
        **fields,
    }


def run_name(result: Mapping[str, Any]) -> str:
    """A flow-run name saying what happened, e.g. ``published-v3-production``."""
    if result.get("published"):
        where = result["alias"] or "not-promoted"
        return f"published-v{result['version']}-{where}"
    if result.get("identical_to") is not None:
        return f"unchanged-same-as-v{result['identical_to']}"
    return "skipped-stale" if result.get("stale") else "not-published"


def describe(result: Mapping[str, Any]) -> str:
    """Human summary, e.g. ``published digits v3 (promoted to production): accuracy 0.9812 ...``."""
    if not result.get("published"):
        return f"not published: {result['reason']}"
    state = "promoted to production" if result["promoted"] else "not promoted"
    metrics = result["metrics"]
    figures = ", ".join(f"{name} {metrics[name]:.4f}" for name in HEADLINE_METRICS)
    return (
        f"published {result['model']} v{result['version']} ({state}) in {result['registry']}\n"
        f"  test: {figures}\n"
        f"  gate: {result['reason']}\n"
        f"  trained {result['epochs']} epoch(s) in {result['train_seconds']:.1f} s "
        f"on {result['threads']} BLAS thread(s)"
    )


def summary_markdown(result: Mapping[str, Any]) -> str:
    """Markdown of a run's outcome: published version, alias, reason and registry."""
    if not result.get("published"):
        return f"# Nothing published\n\n{result['reason']}\n\nRegistry: `{result['registry']}`"
    alias = f"`{result['alias']}` now points at it" if result["alias"] else "not promoted"
    return "\n".join(
        [
            f"# Published {result['model']} v{result['version']}",
            "",
            f"- alias: {alias}",
            f"- test accuracy: {result['metrics']['accuracy']:.4f}",
            f"- gate: {result['reason']}",
            f"- registry: `{result['registry']}`",
        ]
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

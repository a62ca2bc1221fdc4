"""Automatic canary analysis: step a canary's weight, check guards between steps, promote or abort.

`run_rollout` is a plain function (the CLI calls it; pipeline/rollout.py wraps it in a Prefect
flow). It runs the candidate as a shadow of production for the whole rollout (so top-1 agreement
is measured on the same requests) and as a canary at each step's percent. After each interval it
reads the replicas' /metrics (pipeline/canary_metrics.py) and checks, over that interval:

- error rate of the canary <= ``max_error_rate``;
- canary p99 / production p99 <= ``max_p99_ratio`` (production's last measured p99 is used
  once it gets too little traffic, e.g. at 100 %);
- top-1 agreement of the shadowed candidate with production >= ``min_agreement`` (over the
  interval, or the whole rollout when the interval compared too few rows).

A failed guard, or any error on the way, aborts the canary (production never moved) and stops the
shadow; passing every step ends with `promote_canary`. Every change lands in the alias history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.canary_metrics import Snapshot, VersionStats, scrape
from registry import Registry, traffic

__all__ = ["Guards", "RolloutResult", "StepReport", "check_guards", "run_rollout"]


@dataclass(frozen=True)
class Guards:
    """Limits a canary must stay within at every step."""

    max_error_rate: float = 0.01  # failed / answered canary predictions
    max_p99_ratio: float = 1.5  # canary p99 latency / production p99 latency
    min_agreement: float = 0.95  # share of rows whose top-1 label matches production's
    min_requests: int = 20  # fewer canary requests (or compared rows) in a step cannot be judged


@dataclass(frozen=True)
class StepReport:
    """What one step measured and decided."""

    percent: float
    canary_requests: float
    error_rate: float
    p99_ratio: float
    agreement: float
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def describe(self) -> str:
        verdict = "ok" if self.ok else "FAILED: " + "; ".join(self.failures)
        return (
            f"{self.percent:g}%: {self.canary_requests:.0f} canary requests, error rate "
            f"{self.error_rate:.4f}, p99 ratio {self.p99_ratio:.2f}, agreement "
            f"{self.agreement:.3f} -> {verdict}"
        )


@dataclass
class RolloutResult:
    """How a rollout ended: "promoted" or "aborted", with every step's report."""

    version: int
    production: int
    outcome: str = "running"
    steps: list[StepReport] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"


@dataclass
class _Memory:
    """What the guards carry from step to step."""

    production_p99: float = math.nan
    agree: float = 0.0
    compared: float = 0.0


def check_guards(
    window: Snapshot, canary: int, production: int, percent: float, guards: Guards,
    memory: _Memory | None = None,
) -> StepReport:  # fmt: skip
    """Judge one interval's statistics; a report whose ``failures`` name every broken guard."""
    memory = memory or _Memory()
    ours, theirs = window.of(canary), window.of(production)
    failures = []
    if ours.requests < guards.min_requests:
        failures.append(f"only {ours.requests:.0f} canary requests (need {guards.min_requests})")
    elif ours.error_rate > guards.max_error_rate:
        failures.append(f"error rate {ours.error_rate:.4f} > {guards.max_error_rate}")
    if theirs.requests >= guards.min_requests:
        memory.production_p99 = theirs.p99()
    ratio = _ratio(ours, memory.production_p99)
    if ratio > guards.max_p99_ratio:
        failures.append(f"p99 ratio {ratio:.2f} > {guards.max_p99_ratio}")
    memory.agree += ours.agree
    memory.compared += ours.compared
    agreement = ours.agreement
    if ours.compared < guards.min_requests:  # e.g. at 100 %: nothing left to compare with
        agreement = memory.agree / memory.compared if memory.compared else math.nan
    if memory.compared < guards.min_requests:
        failures.append(f"only {memory.compared:.0f} rows compared with production")
    elif agreement < guards.min_agreement:
        failures.append(f"agreement {agreement:.3f} < {guards.min_agreement}")
    return StepReport(percent, ours.requests, ours.error_rate, ratio, agreement, tuple(failures))


def _ratio(canary: VersionStats, production_p99: float) -> float:
    ours = canary.p99()
    if math.isnan(ours) or math.isnan(production_p99) or production_p99 <= 0:
        return math.nan  # not judged: no latency to compare (the request guard covers it)
    return ours / production_p99


def run_rollout(
    registry: Registry,
    name: str,
    version: int | str,
    metrics_urls: Sequence[str],
    *,
    steps: Sequence[float] = (10, 50, 100),
    interval_s: float = 60.0,
    guards: Guards = Guards(),
    shadow_percent: float = 100.0,
    alias: str = "production",
    actor: str | None = None,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutResult:
    """Step ``version`` through ``steps`` (percents) as a canary of ``alias``; promote or abort.

    Raises ValueError for a bad plan and NotFoundError for an unknown version or alias (nothing
    changed then); any failure after the canary started aborts it before the error propagates.
    """
    if not steps or list(steps) != sorted(steps) or not steps[0] > 0 or steps[-1] > 100:
        raise ValueError(f"steps must be ascending percents in (0, 100], got {list(steps)}")
    if not metrics_urls:
        raise ValueError("give at least one metrics URL (each replica's /metrics)")
    target = registry.resolve(name, version)
    production = registry.resolve(name, alias)
    result = RolloutResult(target, production)
    memory = _Memory()
    try:
        traffic.set_shadow(registry, name, target, shadow_percent, alias=alias, actor=actor,
                           reason=f"rollout of {target}: compare with production")  # fmt: skip
        for number, percent in enumerate(steps, start=1):
            where = f"rollout of {target}, step {number}/{len(steps)}"
            traffic.set_canary(
                registry,
                name,
                target,
                percent,
                alias=alias,
                actor=actor,
                reason=f"{where}: {percent:g}%",
            )
            before = scrape(metrics_urls)
            sleep(interval_s)
            window = scrape(metrics_urls).since(before)
            report = check_guards(window, target, production, percent, guards, memory)
            result.steps.append(report)
            log(f"{where}: {report.describe()}")
            if not report.ok:
                _abort(
                    registry, name, alias, actor, f"{where} failed: {'; '.join(report.failures)}"
                )
                result.outcome = "aborted"
                return result
    except BaseException as err:
        _abort(registry, name, alias, actor, f"rollout of {target} stopped by an error: {err}")
        raise
    traffic.promote_canary(
        registry, name, alias=alias, actor=actor, reason=f"rollout of {target} passed every step"
    )
    result.outcome = "promoted"
    return result


def _abort(registry: Registry, name: str, alias: str, actor: str | None, reason: str) -> None:
    """Remove the canary and the shadow (either may be gone already)."""
    record = registry.alias_record(name, alias) or {}
    if record.get("canary"):
        traffic.abort_canary(registry, name, alias=alias, actor=actor, reason=reason)
    if record.get("shadow"):
        traffic.stop_shadow(registry, name, alias=alias, actor=actor, reason=reason)

"""Hyper-parameter sweeps: a grid or a random search over training settings, and the ranking.

A sweep file (YAML or JSON)::

    method: random          # or grid (every combination)
    trials: 8               # random search: the trial budget
    seed: 0                 # random search: reproducible draws
    validation_fraction: 0.1
    parameters:
      lr: {min: 1.0e-4, max: 1.0e-2, log: true}   # a range (random search only)
      batch_size: [64, 128]                       # a list of choices
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.settings import TrainSettings

__all__ = ["SWEEPABLE", "Range", "SweepSpec", "expand", "parse_sweep_option", "rank"]

SWEEPABLE = ("lr", "batch_size", "epochs", "seed", "loss", "layer_sizes", "validation_split")
_INTEGER_FIELDS = ("batch_size", "epochs", "seed")


class Range(BaseModel):
    """A numeric interval drawn from uniformly (or log-uniformly) by a random search."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: float
    """Lower bound (inclusive)."""
    max: float
    """Upper bound (inclusive for integers)."""
    log: bool = False
    """Draw uniformly in log space (learning rates); needs min > 0."""

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.min <= self.max or (self.log and self.min <= 0):
            raise ValueError(f"need min <= max (and min > 0 with log), got {self.min}, {self.max}")
        return self


class SweepSpec(BaseModel):
    """What to try: values per setting, grid or random, and how trials are compared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["grid", "random"] = "grid"
    """grid: every combination of the lists; random: ``trials`` independent draws."""
    parameters: dict[str, list[Any] | Range] = Field(min_length=1)
    """TrainSettings field -> list of values, or (random search) a Range."""
    trials: int | None = Field(None, ge=1, le=10_000)
    """Random search: how many trials (required); grid: ignored."""
    seed: int = Field(0, ge=0)
    """Seeds the random search's draws."""
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    """Share of training rows held out (same rows for every trial) to rank the trials."""

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        for name, values in self.parameters.items():
            if name not in SWEEPABLE:
                raise ValueError(f"cannot sweep {name!r}; sweepable: {', '.join(SWEEPABLE)}")
            if isinstance(values, list) and not values:
                raise ValueError(f"{name}: give at least one value")
            if isinstance(values, Range) and self.method == "grid":
                raise ValueError(f"{name}: a range needs method: random (a grid needs a list)")
        if self.method == "random" and self.trials is None:
            raise ValueError("method: random needs a trial budget (trials: N)")
        return self


def parse_sweep_option(text: str) -> tuple[str, list[str]]:
    """``"lr=1e-3,2e-3"`` -> ``("lr", ["1e-3", "2e-3"])``; ValueError names the problem."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name or not items:
        raise ValueError(f"expected NAME=V1,V2,... (e.g. lr=1e-3,2e-3), got {text!r}")
    return name, items


def _draw(name: str, values: list[Any] | Range, rng: np.random.Generator) -> Any:
    if isinstance(values, list):
        return values[int(rng.integers(len(values)))]
    if name in _INTEGER_FIELDS:
        return int(rng.integers(math.ceil(values.min), math.floor(values.max) + 1))
    if values.log:
        return float(math.exp(rng.uniform(math.log(values.min), math.log(values.max))))
    return float(rng.uniform(values.min, values.max))


def expand(spec: SweepSpec, base: TrainSettings) -> list[TrainSettings]:
    """One validated TrainSettings per trial (1 BLAS thread each: a worker runs one trial).

    Raises ValueError naming the trial and setting when a value is invalid.
    """
    names = list(spec.parameters)
    if spec.method == "grid":
        lists = [spec.parameters[n] for n in names]
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*lists)]  # type: ignore[arg-type]
    else:
        rng = np.random.default_rng(spec.seed)
        assert spec.trials is not None  # checked by the model validator
        combos = [{n: _draw(n, spec.parameters[n], rng) for n in names} for _ in range(spec.trials)]
    fields = base.model_dump()
    trials = []
    for index, combo in enumerate(combos):
        try:
            trials.append(TrainSettings(**{**fields, **combo, "threads": 1}))
        except ValidationError as err:
            problem = err.errors()[0]
            raise ValueError(
                f"trial {index} {combo}: {'.'.join(map(str, problem['loc']))}: {problem['msg']}"
            ) from None
    return trials


def rank(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Trials best first: highest validation accuracy, then lowest validation loss, then order.

    Each row gains ``rank`` (1 = the winner).
    """
    ordered = sorted(results, key=lambda r: (-r["val_accuracy"], r["val_loss"], r["index"]))
    return [{**row, "rank": place} for place, row in enumerate(ordered, start=1)]

"""Champion/challenger gate: publish good models, promote those not worse than production."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.metrics import accuracy
from core.mlp import MLP
from registry import DEFAULT_ALIAS, IntegrityError, NotFoundError, Registry

__all__ = [
    "Champion",
    "GateDecision",
    "GateRejected",
    "decide",
    "evaluate_champion",
    "quick_run_note",
]

# Fewer epochs than this (or a --train-limit) is a quick run: the default gate refuses most.
_FULL_RUN_EPOCHS = 10

_log = logging.getLogger(__name__)


class GateRejected(ValueError):
    """The challenger is not good enough to publish; the message is the reason."""


@dataclass(frozen=True)
class Champion:
    """The current production version and its accuracy on the challenger's test set."""

    version: int
    accuracy: float


@dataclass(frozen=True)
class GateDecision:
    """Whether to publish and promote, and one sentence saying why."""

    publish: bool
    promote: bool
    reason: str
    champion_version: int | None = None
    champion_accuracy: float | None = None


def evaluate_champion(
    registry_dir: Path | str, name: str, x_test: NDArray[np.floating], y_test: NDArray[np.integer]
) -> Champion | None:
    """Score the production version on the same test set; None when there is none to compare.

    A production version that fails verification or no longer fits the data cannot defend its
    title, so it is treated as absent (and logged) rather than blocking a good challenger.
    """
    registry = Registry(registry_dir)
    try:
        loaded = registry.load(name, DEFAULT_ALIAS)
    except NotFoundError:
        return None
    except (IntegrityError, ValueError) as err:
        _log.warning("production version of %s is unusable, ignoring it: %s", name, err)
        return None
    try:
        model = MLP.from_params(
            loaded.params, loss=str(loaded.manifest.get("loss", "cross_entropy"))
        )
        probabilities = model.predict_proba(x_test)
    except ValueError as err:
        _log.warning(
            "production v%d of %s cannot score the test set: %s", loaded.version, name, err
        )
        return None
    return Champion(loaded.version, accuracy(probabilities, y_test))


def quick_run_note(epochs: int, train_limit: int | None) -> str | None:
    """ "a quick run (1 epoch, --train-limit 1000)" for runs short of the recipe, else None."""
    parts = [f"{epochs} epoch{'s' if epochs != 1 else ''}"] if epochs < _FULL_RUN_EPOCHS else []
    if train_limit is not None:
        parts.append(f"--train-limit {train_limit}")
    return f"a quick run ({', '.join(parts)})" if parts else None


def _below_minimum(acc: float, min_accuracy: float, quick_run: str | None) -> str:
    """The rejection reason; it names the flag, and for a quick run how to publish it."""
    reason = f"test accuracy {acc:.4f} is below the minimum {min_accuracy} (--min-accuracy)"
    if quick_run is None:
        return reason
    suggestion = f", e.g. --min-accuracy {np.floor(acc * 100) / 100:.2f}" if acc > 0.01 else ""
    return f"{reason}; {quick_run}: lower --min-accuracy to publish it{suggestion}"


def decide(
    challenger_accuracy: float,
    champion: Champion | None,
    min_accuracy: float,
    tolerance: float,
    promote_ties: bool = False,
    *,
    quick_run: str | None = None,
) -> GateDecision:
    """Reject below ``min_accuracy``; else publish, and promote when better than the champion.

    Better means accuracy > champion's - ``tolerance``; a tie (equal) promotes only with
    ``promote_ties``, so re-training on unchanged data does not move production for nothing.
    ``quick_run`` (from ``quick_run_note``) makes a rejection say how to publish such a run.
    """
    acc = f"{challenger_accuracy:.4f}"
    if not challenger_accuracy >= min_accuracy:  # also rejects NaN
        return GateDecision(
            False, False, _below_minimum(challenger_accuracy, min_accuracy, quick_run)
        )
    if champion is None:
        return GateDecision(True, True, f"test accuracy {acc}; no production version to beat")
    versus = f"production v{champion.version} scores {champion.accuracy:.4f} on the same test set"
    fields: dict[str, Any] = {
        "champion_version": champion.version,
        "champion_accuracy": champion.accuracy,
    }
    bar = champion.accuracy - tolerance
    if challenger_accuracy > bar or (promote_ties and challenger_accuracy == bar):
        return GateDecision(
            True, True, f"test accuracy {acc}; {versus} (tolerance {tolerance})", **fields
        )
    if challenger_accuracy == bar:
        return GateDecision(
            True, False, f"test accuracy {acc} ties: {versus} (ties do not promote)", **fields
        )
    return GateDecision(
        True, False, f"test accuracy {acc} is worse: {versus} (tolerance {tolerance})", **fields
    )

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

__all__ = ["Champion", "GateDecision", "GateRejected", "decide", "evaluate_champion"]

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


def decide(
    challenger_accuracy: float,
    champion: Champion | None,
    min_accuracy: float,
    tolerance: float,
    promote_ties: bool = False,
) -> GateDecision:
    """Reject below ``min_accuracy``; else publish, and promote when better than the champion.

    Better means accuracy > champion's - ``tolerance``; a tie (equal) promotes only with
    ``promote_ties``, so re-training on unchanged data does not move production for nothing.
    """
    acc = f"{challenger_accuracy:.4f}"
    if not challenger_accuracy >= min_accuracy:  # also rejects NaN
        return GateDecision(
            False, False, f"test accuracy {acc} is below the minimum {min_accuracy}"
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

"""Publishing without races or repeats: identical models are recognised, promotion is a CAS."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.gate import GateDecision, decide, evaluate_champion
from registry import DEFAULT_ALIAS, NotFoundError, Registry
from registry.errors import ConflictError

__all__ = ["find_identical", "promote_over_champion", "weights_digest"]

_ATTEMPTS = 3  # re-scorings after a lost race before the gate declines to promote


def weights_digest(params: Mapping[str, NDArray[Any]]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes (little-endian, C order)."""
    digest = hashlib.sha256()
    for name in sorted(params):
        array = np.ascontiguousarray(params[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def find_identical(registry_dir: Path | str, name: str, digest: str) -> int | None:
    """The newest published version whose manifest records the same ``weights_sha256``."""
    try:
        versions = Registry(registry_dir).list_versions(name)
    except NotFoundError:
        return None
    matches = [v.version for v in versions if v.manifest.get("weights_sha256") == digest]
    return matches[-1] if matches else None


def promote_over_champion(
    registry_dir: Path | str,
    name: str,
    version: int,
    accuracy: float,
    decision: GateDecision,
    test_set: tuple[NDArray[np.floating], NDArray[np.integer]],
    tolerance: float,
    promote_ties: bool = False,
) -> GateDecision:
    """Promote ``version`` only while production is still the champion the gate scored.

    ``Registry.promote(expected=champion)`` is a compare-and-set under the alias lock. When
    another run moved production meanwhile (ConflictError), the new champion is scored on the
    same test set and the rule applied again; after a few lost races the gate declines
    (publish only). Returns the decision that held when the alias was written (or declined).
    """
    registry = Registry(registry_dir)
    expected = decision.champion_version
    for _ in range(_ATTEMPTS):
        if not decision.promote:
            return decision
        try:
            registry.promote(name, version, DEFAULT_ALIAS, expected=expected)
            return decision
        except ConflictError:
            expected = registry.aliases(name).get(DEFAULT_ALIAS)
            champion = evaluate_champion(registry_dir, name, *test_set)
            if champion is not None and champion.version != expected:
                continue  # production moved again while we scored it
            decision = decide(accuracy, champion, 0.0, tolerance, promote_ties)
            decision = replace(decision, reason=f"{decision.reason} (re-scored after a race)")
    return replace(
        decision, promote=False, reason=f"{decision.reason}; production kept moving, not promoted"
    )

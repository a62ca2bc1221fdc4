"""Registry.promote: the compare-and-set of an alias that the champion/challenger gate relies on."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from registry import NotFoundError, Registry
from registry.errors import ConflictError
from registry.registry import UNCONDITIONAL


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path)
    for seed in range(3):
        registry.publish("digits", {"w": np.full(2, seed, np.float32)}, {"loss": "mse"})
    return registry


def test_expected_none_creates_the_alias_once(registry: Registry) -> None:
    assert registry.promote("digits", 1, expected=None) is None
    with pytest.raises(ConflictError, match="points to version 1, not nothing as expected"):
        registry.promote("digits", 2, expected=None)
    assert registry.aliases("digits") == {"production": 1}


def test_expected_version_must_still_be_the_target(registry: Registry) -> None:
    registry.promote("digits", 1, "staging", expected=None)
    assert registry.promote("digits", 2, "staging", expected=1) == 1
    with pytest.raises(ConflictError, match="points to version 2, not version 1"):
        registry.promote("digits", 3, "staging", expected=1)
    assert registry.aliases("digits") == {"staging": 2}
    assert registry.alias_history("digits", "staging") == [1]


def test_unconditional_is_the_default(registry: Registry) -> None:
    registry.promote("digits", 1)
    assert registry.promote("digits", 3, expected=UNCONDITIONAL) == 1
    assert registry.promote("digits", "latest") == 3  # no-op, any reference works


def test_unknown_version_is_not_found_and_leaves_the_alias(registry: Registry) -> None:
    registry.promote("digits", 1)
    with pytest.raises(NotFoundError):
        registry.promote("digits", 9, expected=1)
    assert registry.aliases("digits") == {"production": 1}


def test_racing_promoters_over_the_same_champion_one_wins(registry: Registry) -> None:
    """Both scored v1; exactly one compare-and-set succeeds, the other sees the conflict."""
    registry.promote("digits", 1)
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def promote(version: int) -> None:
        barrier.wait()
        try:
            registry.promote("digits", version, expected=1)
            outcomes[version] = "won"
        except ConflictError:
            outcomes[version] = "conflict"

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes.values()) == ["conflict", "won"]
    winner = next(v for v, outcome in outcomes.items() if outcome == "won")
    assert registry.aliases("digits") == {"production": winner}

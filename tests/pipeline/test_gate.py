"""Champion/challenger gate: the decision rule and scoring the production model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.mlp import MLP
from pipeline.gate import Champion, decide, evaluate_champion
from registry import Registry


@pytest.mark.parametrize(
    ("accuracy", "champion", "publish", "promote", "phrase"),
    [
        (0.96, None, False, False, "below the minimum 0.97"),
        (float("nan"), None, False, False, "below the minimum"),
        (0.98, None, True, True, "no production version"),
        (0.98, Champion(3, 0.98), True, True, "production v3 scores 0.9800"),
        (0.979, Champion(3, 0.981), True, True, "tolerance 0.005"),
        (0.975, Champion(3, 0.981), True, False, "is worse"),
    ],
)
def test_decide(accuracy, champion, publish, promote, phrase):
    decision = decide(accuracy, champion, min_accuracy=0.97, tolerance=0.005)
    assert (decision.publish, decision.promote) == (publish, promote)
    assert phrase in decision.reason
    if champion is not None:
        assert decision.champion_version == champion.version


@pytest.mark.parametrize(("promote_ties", "promote"), [(False, False), (True, True)])
def test_ties_promote_only_when_asked(promote_ties: bool, promote: bool):
    decision = decide(0.98, Champion(2, 0.98), 0.9, 0.0, promote_ties=promote_ties)
    assert (decision.publish, decision.promote) == (True, promote)
    assert ("ties do not promote" in decision.reason) is not promote


def test_evaluate_champion_scores_production_on_the_given_set(tmp_path: Path):
    registry = Registry(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.random((50, 784)).astype(np.float32)
    assert evaluate_champion(tmp_path, "m", x, np.zeros(50, dtype=np.int64)) is None
    model = MLP(seed=1)
    predicted = model.predict(x)
    registry.publish("m", dict(model.params), {"loss": "cross_entropy"})
    assert evaluate_champion(tmp_path, "m", x, predicted) is None  # published, not production
    registry.set_alias("m", "production", 1)
    champion = evaluate_champion(tmp_path, "m", x, predicted)
    assert champion == Champion(1, 1.0)
    labels = predicted.copy()
    labels[:10] = (labels[:10] + 1) % 10
    assert evaluate_champion(tmp_path, "m", x, labels) == Champion(1, 0.8)

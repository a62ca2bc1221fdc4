"""Promotion without races: the compare-and-set gate, identical weights, overrides, staleness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import steps
from pipeline.gate import decide, evaluate_champion
from pipeline.overrides import is_stale, merge_settings
from pipeline.promotion import find_identical, promote_over_champion, weights_digest
from pipeline.settings import TrainSettings
from registry import Registry
from tests.helpers.synthetic import NAMES, write_synthetic_mnist


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> steps.Dataset:
    directory = tmp_path_factory.mktemp("data")
    write_synthetic_mnist(directory)
    return steps.load_dataset({n: directory / n for n in (*NAMES["train"], *NAMES["test"])})


def _publish(registry_dir: Path, dataset: steps.Dataset, **fields) -> tuple[int, float]:
    settings = TrainSettings(registry_dir=registry_dir, threads=1, **fields)
    trained = steps.train(dataset, settings)
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    decision = decide(metrics["accuracy"], None, 0.0, 0.0)
    manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
    return steps.publish(settings, trained.model, manifest, {}).version, metrics["accuracy"]


@pytest.mark.parametrize("better_first", [True, False])
def test_race_over_the_same_champion_ends_on_the_better_model(
    tmp_path: Path, dataset: steps.Dataset, better_first: bool
):
    """The bug: with a weak production v1, two runs that both scored v1 before either
    promoted left the worse one in production when it promoted last."""
    registry = Registry(tmp_path)
    weak, _ = _publish(tmp_path, dataset, epochs=1, lr=1e-5)
    registry.promote("digits", weak, expected=None)
    good, good_acc = _publish(tmp_path, dataset, epochs=3, lr=5e-3, batch_size=32)
    fair, fair_acc = _publish(tmp_path, dataset, epochs=1, lr=5e-4, batch_size=64)
    assert good_acc > fair_acc
    test_set = (dataset.x_test, dataset.y_test)
    scored = evaluate_champion(tmp_path, "digits", *test_set)  # both challengers score v1
    decisions = {v: decide(a, scored, 0.0, 0.0) for v, a in ((good, good_acc), (fair, fair_acc))}
    assert all(d.promote and d.champion_version == weak for d in decisions.values())
    order = [(good, good_acc), (fair, fair_acc)]
    outcome = {}
    for version, accuracy in order if better_first else order[::-1]:
        outcome[version] = promote_over_champion(
            tmp_path, "digits", version, accuracy, decisions[version], test_set, 0.0
        )
    assert registry.aliases("digits") == {"production": good}
    assert outcome[good].promote is True
    assert outcome[fair].promote is (not better_first)  # promoted only when first
    last = fair if better_first else good
    assert "re-scored after a race" in outcome[last].reason


def test_identical_weights_are_recognised(tmp_path: Path, dataset: steps.Dataset):
    version, _ = _publish(tmp_path, dataset, epochs=1)
    settings = TrainSettings(epochs=1, threads=1)
    again = steps.train(dataset, settings)
    digest = weights_digest(again.model.params)
    assert find_identical(tmp_path, "digits", digest) == version
    other = steps.train(dataset, settings.model_copy(update={"seed": 1}))
    assert find_identical(tmp_path, "digits", weights_digest(other.model.params)) is None
    assert find_identical(tmp_path / "empty", "digits", digest) is None


def test_run_settings_merge_into_the_deployment_settings():
    deployment = {"registry_dir": "/srv/alt", "epochs": 20, "min_accuracy": 0.5}
    # What Prefect hands the flow for `--param settings='{"epochs": 1}'`: only epochs set.
    override = TrainSettings.model_validate({"epochs": 1})
    merged = merge_settings(deployment, override, {"lr": None})
    assert (merged.registry_dir, merged.epochs, merged.min_accuracy) == (Path("/srv/alt"), 1, 0.5)
    per_field = merge_settings(deployment, None, {"epochs": 2, "lr": 1e-3, "seed": None})
    assert (per_field.registry_dir, per_field.epochs, per_field.lr) == (Path("/srv/alt"), 2, 1e-3)
    outside = merge_settings(None, TrainSettings(epochs=4, registry_dir=Path("x")), {"epochs": 5})
    assert (outside.epochs, outside.registry_dir) == (5, Path("x"))


def test_stale_only_after_the_allowed_lateness():
    now = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    assert not is_stale(None, now, 60)
    assert not is_stale(now - timedelta(seconds=59), now, 60)
    assert is_stale(now - timedelta(hours=5), now, 60)

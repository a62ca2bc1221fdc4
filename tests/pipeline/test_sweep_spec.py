"""Sweep specs: grid and random expansion, validation, ranking, and the per-worker data split."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.settings import TrainSettings
from pipeline.sweep import Range, SweepSpec, expand, parse_sweep_option, rank
from pipeline.trial import DataRef, load_split
from tests.helpers.synthetic import NAMES, write_synthetic_mnist


def test_parse_sweep_option():
    assert parse_sweep_option("lr=1e-3, 2e-3") == ("lr", ["1e-3", "2e-3"])
    assert parse_sweep_option("batch-size=64") == ("batch_size", ["64"])
    for bad in ("lr", "lr=", "=1"):
        with pytest.raises(ValueError, match="expected NAME=V1,V2"):
            parse_sweep_option(bad)


def test_grid_is_every_combination_with_one_thread_each():
    spec = SweepSpec(parameters={"lr": ["1e-3", "2e-3"], "batch_size": [64, 128, 256]})
    trials = expand(spec, TrainSettings(epochs=3))
    assert [(t.lr, t.batch_size) for t in trials] == [
        (1e-3, 64), (1e-3, 128), (1e-3, 256), (2e-3, 64), (2e-3, 128), (2e-3, 256),
    ]  # fmt: skip
    assert {(t.epochs, t.threads) for t in trials} == {(3, 1)}


def test_random_search_respects_budget_ranges_and_seed():
    spec = SweepSpec(
        method="random",
        trials=20,
        seed=7,
        parameters={"lr": Range(min=1e-4, max=1e-2, log=True), "epochs": Range(min=1, max=3),
                    "batch_size": [32, 64]},
    )  # fmt: skip
    trials = expand(spec, TrainSettings())
    assert len(trials) == 20
    assert all(1e-4 <= t.lr <= 1e-2 and t.epochs in (1, 2, 3) for t in trials)
    assert {t.batch_size for t in trials} == {32, 64}
    assert len({t.lr for t in trials}) == 20
    assert [t.lr for t in expand(spec, TrainSettings())] == [t.lr for t in trials]  # same seed
    other = spec.model_copy(update={"seed": 8})
    assert [t.lr for t in expand(other, TrainSettings())] != [t.lr for t in trials]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parameters": {"registry_dir": ["x"]}}, "cannot sweep 'registry_dir'"),
        ({"parameters": {"lr": []}}, "at least one value"),
        ({"parameters": {"lr": {"min": 1e-3, "max": 1e-2}}}, "needs method: random"),
        ({"method": "random", "parameters": {"lr": [1e-3]}}, "trial budget"),
        ({"method": "random", "trials": 2, "parameters": {"lr": {"min": 0, "max": 1, "log": True}}},
         "min > 0"),
    ],
)  # fmt: skip
def test_bad_specs_are_refused_with_the_reason(fields, message):
    with pytest.raises(ValidationError, match=message):
        SweepSpec(**fields)


def test_a_bad_value_names_the_trial():
    spec = SweepSpec(parameters={"batch_size": [64, 0]})
    with pytest.raises(ValueError, match=r"trial 1 \{'batch_size': 0\}: batch_size"):
        expand(spec, TrainSettings())


def test_rank_by_validation_accuracy_then_loss():
    rows = [
        {"index": 0, "val_accuracy": 0.90, "val_loss": 0.3},
        {"index": 1, "val_accuracy": 0.95, "val_loss": 0.2},
        {"index": 2, "val_accuracy": 0.95, "val_loss": 0.1},
    ]
    assert [(r["index"], r["rank"]) for r in rank(rows)] == [(2, 1), (1, 2), (0, 3)]


def test_split_is_verified_fixed_and_cached_per_process(tmp_path: Path):
    digests = write_synthetic_mnist(tmp_path, n_train=200, n_test=50)
    names = [*NAMES["train"], *NAMES["test"]]
    paths = tuple((n, str(tmp_path / n)) for n in names)
    ref = DataRef(paths, tuple(digests.items()), None, 0.25)
    split = load_split(ref)
    assert (len(split.y_train), len(split.y_test)) == (150, 50)  # 25 % of 200 held out
    assert load_split(ref) is split  # loaded and verified once per worker process
    wrong = DataRef(paths, ((names[0], "0" * 64),), None, 0.25)
    with pytest.raises(ValueError, match=f"{names[0]}: sha256 .* is not the expected one"):
        load_split(wrong)

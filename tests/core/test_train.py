"""The training loop: learning, reproducibility, validation, schedules, callbacks, divergence."""

from __future__ import annotations

import numpy as np
import pytest

from core import MLP, DivergenceError, TrainConfig, fit
from core.augment import random_shift
from core.schedule import learning_rate


def _separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 16 dimensions, far apart: a linearly separable problem."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (3, 16)) * 4
    labels = rng.integers(0, 3, n)
    x = centres[labels] + rng.normal(0, 0.5, (n, 16))
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32), labels


def test_learns_a_separable_problem_to_100_percent() -> None:
    x, y = _separable(600, seed=0)
    model = MLP(layer_sizes=(16, 12, 3), seed=0)
    result = fit(model, x, y, TrainConfig(lr=1e-2, epochs=30, batch_size=32, shift_pixels=0))
    x_test, y_test = _separable(
        300, seed=0
    )  # same centres (same seed), new rows drawn the same way
    assert (model.predict(x_test) == y_test).mean() == 1.0
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 5
    assert result.steps == 30 * 19


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_same_seed_same_data_gives_identical_weights(loss: str) -> None:
    x, y = _separable(200, seed=1)
    config = TrainConfig(lr=5e-3, epochs=3, batch_size=16, seed=4, shift_pixels=0)
    first, second = MLP((16, 8, 3), seed=2, loss=loss), MLP((16, 8, 3), seed=2, loss=loss)
    fit(first, x, y, config)
    fit(second, x, y, config)
    assert first.flat_params.tobytes() == second.flat_params.tobytes()
    third = MLP((16, 8, 3), seed=2, loss=loss)
    fit(third, x, y, TrainConfig(lr=5e-3, epochs=3, batch_size=16, seed=5, shift_pixels=0))
    assert third.flat_params.tobytes() != first.flat_params.tobytes()


def test_validation_split_history_and_callback() -> None:
    x, y = _separable(400, seed=2)
    seen: list[dict[str, float]] = []
    result = fit(
        MLP((16, 8, 3), seed=0),
        x,
        y,
        TrainConfig(lr=1e-2, epochs=4, batch_size=50, validation_split=0.25, shift_pixels=0),
        on_epoch=seen.append,
    )
    assert result.validation_size == 100
    assert [record["epoch"] for record in seen] == [1, 2, 3, 4]
    assert seen == result.history
    for key in (
        "loss",
        "accuracy",
        "lr",
        "val_accuracy",
        "val_cost_mse",
        "val_rmse",
        "val_r2",
        "val_cross_entropy",
    ):
        assert key in result.history[-1]
    assert result.steps == 4 * 6  # 300 training rows in batches of 50


def test_divergence_stops_with_a_clear_error() -> None:
    x, y = _separable(200, seed=3)
    x[0, 0] = np.inf
    with (
        np.errstate(invalid="ignore"),
        pytest.raises(DivergenceError, match="became nan at epoch 1"),
    ):
        fit(MLP((16, 8, 3), seed=0), x, y, TrainConfig(epochs=1, batch_size=200, shift_pixels=0))


def test_bad_labels_and_shapes_are_rejected() -> None:
    x, y = _separable(50, seed=4)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        fit(MLP((16, 8, 3)), x, y + 1, TrainConfig(epochs=1, shift_pixels=0))
    with pytest.raises(ValueError, match="expected X"):
        fit(MLP((16, 8, 3)), x, y[:-1], TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="validation_split"):
        TrainConfig(validation_split=1.0)


def test_resuming_with_the_optimizer_continues_the_step_count() -> None:
    x, y = _separable(64, seed=5)
    model = MLP((16, 8, 3), seed=0)
    config = TrainConfig(lr=1e-2, epochs=1, batch_size=32, schedule="constant", shift_pixels=0)
    first = fit(model, x, y, config)
    second = fit(model, x, y, config, optimizer=first.optimizer)
    assert second.optimizer is first.optimizer and second.optimizer.t == 4


def test_cosine_schedule_with_warmup() -> None:
    config = TrainConfig(lr=1.0, schedule="cosine", min_lr_ratio=0.1, warmup_steps=10)
    assert learning_rate(0, 110, config) == pytest.approx(0.1)
    assert learning_rate(9, 110, config) == pytest.approx(1.0)
    assert learning_rate(60, 110, config) == pytest.approx(0.55)
    assert learning_rate(110, 110, config) == pytest.approx(0.1)
    assert learning_rate(50, 110, TrainConfig(lr=0.3, schedule="constant")) == 0.3


def _offset_of(original: np.ndarray, shifted: np.ndarray) -> tuple[int, int] | None:
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            if np.array_equal(np.roll(original, (dy, dx), axis=(-2, -1)), shifted):
                return dy, dx
    return None


def test_random_shift_translates_the_batch_without_changing_ink() -> None:
    rng = np.random.default_rng(0)
    images = np.zeros((16, 28, 28), np.float32)
    images[:, 10:18, 10:18] = rng.random((16, 8, 8))  # ink away from the border: shifts lose none
    seen = set()
    for _ in range(200):
        shifted = random_shift(images.reshape(16, -1), 2, rng).reshape(16, 28, 28)
        np.testing.assert_allclose(shifted.sum(axis=(1, 2)), images.sum(axis=(1, 2)), rtol=1e-5)
        offset = _offset_of(images, shifted)
        assert offset is not None, "the batch is an exact translation of the original"
        seen.add(offset)
    assert len(seen) == 25  # every offset in [-2, 2]^2 occurs
    flat = images.reshape(16, -1)
    np.testing.assert_array_equal(random_shift(flat, 0, rng), flat)
    with pytest.raises(ValueError, match="square images"):
        random_shift(np.zeros((2, 10), np.float32), 1, rng)

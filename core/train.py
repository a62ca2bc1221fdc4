"""The training loop: shuffled mini-batches, Adam, a schedule, validation and divergence checks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.augment import random_shift
from core.config import TrainConfig
from core.metrics import check_labels, evaluate
from core.mlp import MLP
from core.optim import Adam
from core.schedule import learning_rate

EpochCallback = Callable[[dict[str, float]], None]
_VALIDATION_METRICS = ("accuracy", "cost_mse", "rmse", "r2", "cross_entropy")


class DivergenceError(ValueError):
    """The loss became NaN or infinite: training stopped and the model must not be used."""


@dataclass
class TrainResult:
    """What ``fit`` measured: one history record per epoch, and the optimiser to resume from."""

    history: list[dict[str, float]]
    seconds: float
    steps: int
    optimizer: Adam = field(repr=False)
    validation_size: int = 0


def split_validation(
    x: NDArray[np.floating], y: NDArray[np.integer], fraction: float, seed: int
) -> tuple[NDArray[np.floating], NDArray[np.integer], NDArray[np.floating], NDArray[np.integer]]:
    """Hold out ``fraction`` of the rows, chosen by a generator seeded with ``seed``."""
    n_val = round(len(x) * fraction)
    if fraction > 0 and not 0 < n_val < len(x):
        raise ValueError(f"validation_split {fraction} leaves no rows on one side of {len(x)}")
    order = np.random.default_rng([seed, 2]).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def fit(
    model: MLP,
    x_train: NDArray[np.floating],
    y_train: NDArray[np.integer],
    config: TrainConfig | None = None,
    x_val: NDArray[np.floating] | None = None,
    y_val: NDArray[np.integer] | None = None,
    on_epoch: EpochCallback | None = None,
    optimizer: Adam | None = None,
) -> TrainResult:
    """Train ``model`` in place on rows ``x_train`` (n, features) with integer labels (n,).

    Validation uses ``x_val``/``y_val`` when given, else ``config.validation_split`` of the
    training rows. Same seed, data and BLAS thread count give bit-identical weights.
    ``optimizer`` continues a previous run (its step count drives bias correction).
    """
    config = config or TrainConfig()
    x_train = np.asarray(x_train)
    y_train = np.asarray(y_train)
    if x_train.ndim != 2 or len(x_train) != len(y_train):
        raise ValueError(f"expected X (n, k) and labels (n,), got {x_train.shape}, {y_train.shape}")
    if x_val is None and config.validation_split > 0:
        x_train, y_train, x_val, y_val = split_validation(
            x_train, y_train, config.validation_split, config.seed
        )
    x_train = np.ascontiguousarray(x_train, dtype=model.dtype)
    n_classes = model.layer_sizes[-1]
    check_labels(y_train, n_classes)  # once, up front: train_step trusts its labels
    rng = np.random.default_rng([config.seed, 1])
    optimizer = optimizer or Adam(config.lr, config.beta1, config.beta2, config.eps)
    total_steps = math.ceil(len(x_train) / config.batch_size) * config.epochs
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    step = 0
    for epoch in range(1, config.epochs + 1):
        record, step = _train_epoch(
            model, optimizer, x_train, y_train, config, rng, epoch, step, total_steps
        )
        if x_val is not None and y_val is not None and len(x_val):
            metrics = evaluate(
                model.predict_proba(np.asarray(x_val, model.dtype)), np.asarray(y_val)
            )
            record.update({f"val_{name}": float(metrics[name]) for name in _VALIDATION_METRICS})
        history.append(record)
        if on_epoch is not None:
            on_epoch(dict(record))
    return TrainResult(
        history=history,
        seconds=time.perf_counter() - started,
        steps=step,
        optimizer=optimizer,
        validation_size=0 if x_val is None else len(x_val),
    )


def _train_epoch(
    model: MLP,
    optimizer: Adam,
    x_train: NDArray[np.floating],
    y_train: NDArray[np.integer],
    config: TrainConfig,
    rng: np.random.Generator,
    epoch: int,
    step: int,
    total_steps: int,
) -> tuple[dict[str, float], int]:
    """One shuffled pass of Adam steps; the epoch's record (loss, accuracy, lr, seconds) and the
    global step count after it. DivergenceError on a non-finite loss."""
    epoch_start = time.perf_counter()
    params, grads = {"flat": model.flat_params}, {"flat": model.flat_grads}
    order = rng.permutation(len(x_train))
    loss_sum, correct, rate = 0.0, 0, config.lr
    for start in range(0, len(order), config.batch_size):
        rows = order[start : start + config.batch_size]
        # Gathering each batch beats copying a shuffled epoch: the rows stay in cache and
        # no 188 MB array is allocated and faulted in per epoch.
        xb = random_shift(x_train[rows], config.shift_pixels, rng)
        yb = y_train[rows]
        loss, logits = model.train_step(xb, yb)
        if not math.isfinite(loss):
            raise DivergenceError(
                f"loss became {loss} at epoch {epoch}, step {step + 1}: "
                f"training diverged (learning rate {config.lr} may be too high)"
            )
        rate = learning_rate(step, total_steps, config)
        optimizer.step(params, grads, lr=rate)
        loss_sum += loss * len(rows)
        correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
        step += 1
    record: dict[str, float] = {
        "epoch": epoch,
        "lr": rate,
        "loss": loss_sum / len(order),
        "accuracy": correct / len(order),
        "seconds": time.perf_counter() - epoch_start,
    }
    return record, step

"""Learning-rate schedules as pure functions of the step number."""

from __future__ import annotations

import math

from core.config import TrainConfig


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Rate at 0-based ``step`` of ``total_steps``: linear warm-up, then constant or cosine."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    decay_steps = max(total_steps - config.warmup_steps, 1)
    progress = min(max(step - config.warmup_steps, 0) / decay_steps, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

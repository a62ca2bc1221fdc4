"""Training-run settings: one validated, typed object carried from the command line to each step."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.config import DEFAULT_LAYER_SIZES, N_CLASSES, N_PIXELS
from pipeline.mirrors import resolve_mirrors
from registry import DEFAULT_MODEL_NAME, default_root

__all__ = ["TrainSettings", "describe_validation_error"]


def _default_mirrors() -> tuple[str, ...]:
    return resolve_mirrors(None, os.environ)


class TrainSettings(BaseModel):
    """Everything one training run needs; defaults train the production model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(20, ge=1, le=1000)
    """Passes over the training split."""
    batch_size: int = Field(128, ge=1, le=65536)
    """Rows per Adam step."""
    lr: float = Field(2e-3, gt=0.0, allow_inf_nan=False)
    """Peak learning rate of Adam."""
    seed: int = Field(0, ge=0)
    """Seeds initialisation, shuffling and the validation split."""
    layer_sizes: tuple[int, ...] = DEFAULT_LAYER_SIZES
    """Input, hidden..., classes; MNIST needs 784 inputs and 10 classes."""
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    """Training loss; "mse" is the design document's cost J."""
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of training rows held out for per-epoch validation metrics."""
    train_limit: int | None = Field(None, ge=1)
    """Use only the first N training rows (quick runs and smoke tests)."""
    min_accuracy: float = Field(0.97, ge=0.0, le=1.0)
    """Test accuracy below this publishes nothing and fails the run."""
    tolerance: float = Field(0.0, ge=0.0, le=1.0)
    """Promote when accuracy >= production's accuracy on the same test set minus this."""
    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, max_length=64)
    """Registry model name."""
    registry_dir: Path = Field(default_factory=default_root)
    """Registry root; $DIGITS_REGISTRY or ./models."""
    data_dir: Path | None = None
    """Dataset cache; None means the per-user cache directory."""
    mirrors: tuple[str, ...] = Field(default_factory=_default_mirrors)
    """Base URLs tried in order; --mirror, $DIGITS_MNIST_MIRRORS, else the public mirrors."""
    offline: bool = False
    """Use only the cache; never touch the network."""
    file_sha256: dict[str, str] | None = None
    """Expected sha256 per file name, replacing MNIST's (other IDX datasets, tests)."""
    download_retries: int = Field(3, ge=0, le=10)
    """Retries per mirror on transient errors (connection, timeout, 5xx)."""
    download_backoff_s: float = Field(1.0, ge=0.0, le=60.0)
    """First back-off delay; doubles on every retry."""

    @field_validator("layer_sizes")
    @classmethod
    def _mnist_shape(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"need at least two positive sizes, got {list(sizes)}")
        if sizes[0] != N_PIXELS or sizes[-1] != N_CLASSES:
            raise ValueError(
                f"must start with {N_PIXELS} inputs and end with {N_CLASSES} classes, "
                f"got {','.join(map(str, sizes))}"
            )
        return sizes

    @field_validator("model_name")
    @classmethod
    def _registry_name(cls, name: str) -> str:
        # Fail before training, not at publish time; the registry owns the naming rule.
        from registry import validate_model_name

        return validate_model_name(name)

    @field_validator("mirrors")
    @classmethod
    def _mirror_urls(cls, mirrors: tuple[str, ...]) -> tuple[str, ...]:
        return resolve_mirrors(mirrors, {}) if mirrors else mirrors

    @field_validator("file_sha256")
    @classmethod
    def _hex_digests(cls, digests: dict[str, str] | None) -> dict[str, str] | None:
        for name, digest in (digests or {}).items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256 of {name} must be 64 lowercase hex digits")
        return digests


def describe_validation_error(err: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line naming every bad setting, e.g. ``epochs: Input should be >= 1 (got 0)``.

    ``names`` maps a field to what the user typed (``{"epochs": "--epochs"}``); the offending
    value is quoted once (not again when the message already says what it got).
    """
    parts: list[str] = []
    for problem in err.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "settings"
        where = (names or {}).get(where, where)
        value: Any = problem.get("input")
        message = problem["msg"].removeprefix("Value error, ")
        got = "" if "got " in message else f" (got {value!r})"
        parts.append(f"{where}: {message}{got}")
    return "invalid training settings: " + "; ".join(parts)

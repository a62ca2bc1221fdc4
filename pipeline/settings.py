"""Training-run settings: one validated, typed object carried from the command line to each step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from core.config import DEFAULT_LAYER_SIZES, N_CLASSES, N_PIXELS, TrainConfig
from pipeline.mirrors import resolve_mirrors
from registry import DEFAULT_MODEL_NAME, default_root
from registry.storage import as_location

__all__ = ["DOWNLOAD_ENVIRONMENT", "TrainSettings"]


def _default_mirrors() -> tuple[str, ...]:
    return resolve_mirrors(None, os.environ)


_CORE = TrainConfig()  # the training defaults are core's: declared once, in core/config.py

# Download bounds a deployment may set in the environment: field -> variable.
DOWNLOAD_ENVIRONMENT = {
    "download_retries": "DIGITS_DOWNLOAD_RETRIES",
    "download_deadline_s": "DIGITS_DOWNLOAD_DEADLINE_S",
    "download_min_rate": "DIGITS_DOWNLOAD_MIN_RATE",
    "download_rate_window_s": "DIGITS_DOWNLOAD_RATE_WINDOW_S",
}


class TrainSettings(BaseModel):
    """Everything one training run needs; defaults train the production model."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    epochs: int = Field(_CORE.epochs, ge=1, le=1000)
    """Passes over the training split."""
    batch_size: int = Field(_CORE.batch_size, ge=1, le=65536)
    """Rows per Adam step."""
    lr: float = Field(_CORE.lr, gt=0.0, allow_inf_nan=False)
    """Peak learning rate of Adam."""
    schedule: Literal["constant", "cosine"] = _CORE.schedule  # type: ignore[assignment]
    """Learning-rate schedule over all steps: constant, or cosine decay to min_lr_ratio * lr."""
    min_lr_ratio: float = Field(_CORE.min_lr_ratio, ge=0.0, le=1.0)
    """Floor of the cosine schedule as a fraction of lr."""
    warmup_steps: int = Field(_CORE.warmup_steps, ge=0)
    """Linear warm-up steps before the schedule starts."""
    beta1: float = Field(_CORE.beta1, ge=0.0, lt=1.0)
    """Adam's first-moment decay (the design document's 0.9)."""
    beta2: float = Field(_CORE.beta2, ge=0.0, lt=1.0)
    """Adam's second-moment decay (the design document's 0.99)."""
    eps: float = Field(_CORE.eps, gt=0.0)
    """Adam's numerical-stability term (the design document's 1e-8)."""
    shift_pixels: int = Field(_CORE.shift_pixels, ge=0, le=4)
    """Random +-N pixel translation of each training batch (0 = no augmentation)."""
    seed: int = Field(_CORE.seed, ge=0)
    """Seeds initialisation, shuffling and the validation split."""
    layer_sizes: tuple[int, ...] = DEFAULT_LAYER_SIZES
    """Input, hidden..., classes; MNIST needs 784 inputs and 10 classes."""
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    """Training loss; "mse" is the design document's cost J."""
    validation_split: float = Field(_CORE.validation_split, ge=0.0, lt=1.0)
    """Fraction of training rows held out for per-epoch validation metrics."""
    train_limit: int | None = Field(None, ge=1)
    """Use only the first N training rows (quick runs and smoke tests)."""
    extra_data: Path | None = None
    """Directory of extra labelled IDX pairs appended to the training split (e.g. exported
    prediction logs); recorded in the manifest with their sha256."""
    threads: int | None = Field(None, ge=1, le=1024)
    """BLAS threads while training; None means the cores this process may use (affinity)."""
    min_accuracy: float = Field(0.97, ge=0.0, le=1.0)
    """Test accuracy below this publishes nothing and fails the run."""
    tolerance: float = Field(0.0, ge=0.0, le=1.0)
    """Promote when accuracy > production's accuracy on the same test set minus this."""
    promote_ties: bool = False
    """Also promote when accuracy equals production's minus the tolerance (a tie)."""
    stale_after_s: float = Field(6 * 3600.0, gt=0.0)
    """A scheduled run starting this long after its slot (an outage) is skipped, not run."""
    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, max_length=64)
    """Registry model name."""
    registry_dir: Annotated[Path | str, BeforeValidator(as_location)] = Field(
        default_factory=default_root
    )
    """Registry root: a directory or s3://bucket/prefix; $DIGITS_REGISTRY or ./models."""
    data_dir: Path | None = None
    """Directory with your MNIST files, read and never modified: the four standard names
    (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
    t10k-labels-idx1-ubyte), each gzipped (.gz) or unpacked, dashed or dotted
    (t10k-images.idx3-ubyte); downloads go to its downloaded/ sub-directory (default: the
    per-user cache, digits/mnist)."""
    mirrors: tuple[str, ...] = Field(default_factory=_default_mirrors)
    """Base URLs tried in order; --mirror, $DIGITS_MNIST_MIRRORS, else the public mirrors."""
    offline: bool = False
    """Use only the files already in the data directory; never touch the network."""
    file_sha256: dict[str, str] | None = None
    """Expected sha256 per file name, replacing MNIST's (other IDX datasets, tests)."""
    download_retries: int = Field(3, ge=0, le=10)
    """Retries per mirror on connection errors and HTTP 5xx; $DIGITS_DOWNLOAD_RETRIES."""
    download_backoff_s: float = Field(1.0, ge=0.0, le=60.0)
    """First back-off delay; doubles on every retry."""
    rollout_metrics: tuple[str, ...] = ()
    """Replicas' /metrics URLs; when set, a challenger the gate would promote goes through a
    canary rollout (pipeline/rollout.py) instead of being promoted outright."""
    rollout_steps: tuple[float, ...] = (10.0, 50.0, 100.0)
    """Canary percents of that rollout, ascending."""
    rollout_interval_s: float = Field(60.0, gt=0.0)
    """Seconds each rollout step runs before its guards are checked."""
    download_deadline_s: float = Field(600.0, gt=0.0, le=86400.0, allow_inf_nan=False)
    """Seconds one file may take from one mirror before the next mirror is tried;
    $DIGITS_DOWNLOAD_DEADLINE_S."""
    download_min_rate: float = Field(10_000.0, ge=0.0, allow_inf_nan=False)
    """Bytes per second a download must average over every rate window, else the next mirror
    is tried (0: no minimum); $DIGITS_DOWNLOAD_MIN_RATE."""
    download_rate_window_s: float = Field(20.0, gt=0.0, le=3600.0, allow_inf_nan=False)
    """Seconds over which the minimum rate is averaged; also the longest wait for a mirror's
    response or for any byte of it; $DIGITS_DOWNLOAD_RATE_WINDOW_S."""

    @model_validator(mode="before")
    @classmethod
    def _download_environment(cls, data: Any) -> Any:
        """$DIGITS_DOWNLOAD_* for the download bounds not given explicitly (validated alike)."""
        if not isinstance(data, dict):
            return data
        given = {
            field: value
            for field, variable in DOWNLOAD_ENVIRONMENT.items()
            if field not in data and (value := os.environ.get(variable, "").strip())
        }
        return {**given, **data}

    def train_config(self) -> TrainConfig:
        """The core training configuration these settings describe (every field of it)."""
        fields = {name: getattr(self, name) for name in TrainConfig.__dataclass_fields__}
        return TrainConfig(**fields)

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

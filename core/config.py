"""Typed, validated settings of the network and of its training: the one place they live."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIDE = 28  # MNIST images are 28 x 28 pixels
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE  # 784: the network's input width
N_CLASSES = 10  # the digits 0-9: the network's output width
DEFAULT_LAYER_SIZES = (N_PIXELS, 128, 40, N_CLASSES)  # the design document's network

LOSSES = ("cross_entropy", "mse")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the MLP and the loss it is trained with."""

    layer_sizes: tuple[int, ...] = DEFAULT_LAYER_SIZES  # input, hidden..., classes
    loss: str = "cross_entropy"  # "cross_entropy" (default) or "mse" (the design document's cost J)

    def __post_init__(self) -> None:
        sizes = tuple(self.layer_sizes)
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output, got {sizes}")
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
            raise ValueError(f"layer_sizes must be positive integers, got {sizes}")
        if sizes[-1] < 2:
            raise ValueError(f"the output layer needs at least 2 classes, got {sizes[-1]}")
        object.__setattr__(self, "layer_sizes", sizes)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Mini-batch Adam training; defaults reach >= 98% MNIST test accuracy (bench/train.py)."""

    lr: float = 2e-3  # peak learning rate of Adam (alpha)
    epochs: int = 20  # passes over the training split
    batch_size: int = 128  # rows per Adam step
    seed: int = 0  # seeds initialisation, shuffling and the validation split
    beta1: float = 0.9  # first-moment decay (the design document's value)
    beta2: float = 0.99  # second-moment decay (the design document's value)
    eps: float = 1e-8  # numerical stability (the design document's value)
    schedule: str = "cosine"  # "constant" or "cosine" decay of lr over all steps
    min_lr_ratio: float = 0.01  # cosine floor as a fraction of lr
    warmup_steps: int = 0  # linear warm-up steps before the schedule
    validation_split: float = 0.0  # fraction of training rows held out for validation
    shift_pixels: int = 1  # random +-N pixel translation of training images (0: off)

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.beta1 < 1.0 or not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"betas must be in [0, 1), got {self.beta1}, {self.beta2}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split}")
        if not 0 <= self.shift_pixels <= 4:
            raise ValueError(f"shift_pixels must be in [0, 4], got {self.shift_pixels}")

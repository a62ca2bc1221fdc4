"""One sweep trial as it runs on a Dask worker: data by reference, cached per worker process.

Trials receive the dataset's file paths and their sha256 (a few hundred bytes), never the
arrays; each worker process reads, verifies and decodes the files once and keeps the split
for the trials that follow.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.metrics import evaluate as evaluate_probabilities
from pipeline import steps
from pipeline.settings import TrainSettings

__all__ = ["DataRef", "TrialResult", "load_split", "run_trial", "worker_name"]

_SPLIT_SEED = 0  # the held-out rows are the same for every trial, so trials compare fairly


@dataclass(frozen=True)
class DataRef:
    """Where the dataset is and what it must hash to; what a trial receives instead of arrays."""

    paths: tuple[tuple[str, str], ...]  # (file name, absolute path)
    sha256: tuple[tuple[str, str], ...]  # (file name, expected sha256)
    train_limit: int | None
    validation_fraction: float


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: its row for the table and the trained weights (for the winner)."""

    row: dict[str, Any]  # index, settings, val_accuracy, val_loss, seconds, worker
    params: dict[str, NDArray[Any]]
    history: list[dict[str, float]]
    train_seconds: float


_cache: dict[DataRef, steps.Dataset] = {}
_cache_lock = threading.Lock()


def load_split(ref: DataRef) -> steps.Dataset:
    """The training rows (``x_train``) and held-out validation rows (as ``x_test``), cached.

    Raises ValueError when a file's sha256 is not the expected one (a stale or partial copy).
    """
    with _cache_lock:
        if ref not in _cache:
            full = steps.load_dataset({n: Path(p) for n, p in ref.paths}, ref.train_limit)
            expected = dict(ref.sha256)
            for name, digest in full.sha256.items():
                if expected.get(name, digest) != digest:
                    raise ValueError(f"{name}: sha256 {digest[:12]}… is not the expected one")
            order = np.random.default_rng(_SPLIT_SEED).permutation(len(full.y_train))
            n_val = max(1, round(len(order) * ref.validation_fraction))
            train, val = order[:-n_val], order[-n_val:]
            _cache[ref] = steps.Dataset(
                full.x_train[train], full.y_train[train], full.x_train[val], full.y_train[val],
                full.sha256,
            )  # fmt: skip
        return _cache[ref]


def worker_name() -> str:
    """The Dask worker's address when running on one, else host:pid."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(
    index: int, settings: TrainSettings, ref: DataRef, swept: dict[str, Any]
) -> TrialResult:
    """Train on the training rows, score on the held-out rows; never touches the test set."""
    split = load_split(ref)
    trained = steps.train(split, settings)
    scores = evaluate_probabilities(trained.model.predict_proba(split.x_test), split.y_test)
    row = {
        "index": index,
        **swept,
        "val_accuracy": float(scores["accuracy"]),
        "val_loss": float(scores["cross_entropy"]),
        "seconds": round(trained.seconds, 3),
        "worker": worker_name(),
    }
    return TrialResult(row, dict(trained.model.params), trained.history, trained.seconds)

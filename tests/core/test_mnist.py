"""Real MNIST (from $MNIST_DIR): a short training reaches >= 97.5% test accuracy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core import MLP, TrainConfig, evaluate, fit, to_features
from core.idx import decode_images, decode_labels

MNIST_DIR = os.environ.get("MNIST_DIR")
pytestmark = pytest.mark.skipif(
    not MNIST_DIR, reason="MNIST_DIR is not set (CI sets it to ../shared/datasets/mnist)"
)


def _load(stem: str) -> tuple[np.ndarray, np.ndarray]:
    root = Path(MNIST_DIR or ".")
    images = decode_images((root / f"{stem}-images-idx3-ubyte.gz").read_bytes())
    labels = decode_labels((root / f"{stem}-labels-idx1-ubyte.gz").read_bytes())
    return to_features(images), labels


def test_canonical_files_decode_to_the_known_facts() -> None:
    x, y = _load("train")
    assert x.shape == (60000, 784) and y.shape == (60000,)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert float(x.mean()) == pytest.approx(0.1307, abs=1e-4)
    assert float(x.std()) == pytest.approx(0.3081, abs=1e-4)


def test_short_training_reaches_97_5_percent() -> None:
    x, y = _load("train")
    x_test, y_test = _load("t10k")
    model = MLP(seed=0)
    fit(model, x, y, TrainConfig(epochs=4, shift_pixels=0))
    metrics = evaluate(model.predict_proba(x_test), y_test)
    assert metrics["accuracy"] >= 0.975, metrics["accuracy"]

"""Digit images for the monitoring tests: real MNIST when MNIST_DIR is set, else synthetic ones,
and a model trained on them and published with its manifest (drift profile included)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pipeline import steps
from pipeline.gate import GateDecision
from pipeline.settings import TrainSettings
from registry import Registry
from tests.helpers.synthetic import write_synthetic_mnist

MODEL = "digits"


def dataset_files(tmp: Path) -> dict[str, Path]:
    """The four IDX files: MNIST_DIR's when set, else synthetic look-alikes written to tmp."""
    mnist = os.environ.get("MNIST_DIR")
    directory = Path(mnist) if mnist else tmp / "synthetic"
    if not mnist:
        write_synthetic_mnist(directory, n_train=3000, n_test=1000)
    names = (steps.TRAIN_IMAGES, steps.TRAIN_LABELS, steps.TEST_IMAGES, steps.TEST_LABELS)
    return {name: directory / name for name in names}


def publish_trained(tmp: Path) -> tuple[Registry, NDArray[np.uint8], NDArray[np.int64]]:
    """Train briefly, publish as production with the pipeline's manifest; return the registry
    and test images (n, 28, 28) uint8 with their labels."""
    dataset = steps.load_dataset(dataset_files(tmp), train_limit=10_000)
    settings = TrainSettings(epochs=2, registry_dir=tmp / "models", model_name=MODEL)
    trained = steps.train(dataset, settings)
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    decision = GateDecision(True, True, "test")
    manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
    published = steps.publish(settings, trained.model, manifest, {})
    registry = Registry(settings.registry_dir)
    registry.promote(MODEL, published.version)
    images = np.rint(dataset.x_test * 255).astype(np.uint8).reshape(-1, 28, 28)
    return registry, images, dataset.y_test


def inverted(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """White paper, black ink."""
    return (255 - images).astype(np.uint8)


def cornered(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Each image's ink bounding box moved to the top-left corner."""
    out = np.zeros_like(images)
    for i, image in enumerate(images):
        rows, cols = np.nonzero(image >= 128)
        if len(rows) == 0:
            out[i] = image
            continue
        top, left = rows.min(), cols.min()
        out[i, : 28 - top, : 28 - left] = image[top:, left:]
    return out


def rotated(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Turned 90 degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2)))

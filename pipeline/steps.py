"""Training steps: plain typed functions from dataset files to a published model version."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import TrainConfig
from core.features import to_features
from core.idx import decode_images, decode_labels
from core.metrics import evaluate as evaluate_probabilities
from core.mlp import MLP
from core.profile import reference_profile
from core.train import fit
from core.version import package_version
from pipeline.gate import GateDecision
from pipeline.promotion import weights_digest
from pipeline.settings import TrainSettings
from pipeline.threads import available_cores, blas_threads
from registry import ModelVersion, Registry

__all__ = [
    "Dataset",
    "Trained",
    "build_manifest",
    "evaluate",
    "load_dataset",
    "load_extra_data",
    "publish",
    "train",
]

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
HEADLINE_METRICS = ("accuracy", "cost_mse", "rmse", "r2", "cross_entropy")

EpochCallback = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class Dataset:
    """Network-ready MNIST: float32 rows in [0, 1] and int64 labels, plus file checksums."""

    x_train: NDArray[np.float32]  # (n_train, 784)
    y_train: NDArray[np.int64]  # (n_train,)
    x_test: NDArray[np.float32]  # (n_test, 784)
    y_test: NDArray[np.int64]  # (n_test,)
    sha256: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Trained:
    """A fitted network with its per-epoch history, the time spent in ``fit`` and BLAS threads."""

    model: MLP
    history: list[dict[str, float]]
    seconds: float
    threads: int = 1


def _read(paths: Mapping[str, Path], name: str) -> tuple[bytes, str]:
    if name not in paths:
        raise ValueError(f"dataset file {name} is missing (have {sorted(paths)})")
    data = Path(paths[name]).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def load_dataset(paths: Mapping[str, Path], train_limit: int | None = None) -> Dataset:
    """Decode and validate the four IDX files; ValueError names the file and the problem."""
    arrays: dict[str, NDArray[Any]] = {}
    digests: dict[str, str] = {}
    for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS):
        data, digests[name] = _read(paths, name)
        decode = decode_images if "images" in name else decode_labels
        try:
            arrays[name] = decode(data)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        if len(arrays[images]) != len(arrays[labels]):
            raise ValueError(
                f"{images} has {len(arrays[images])} images but {labels} has "
                f"{len(arrays[labels])} labels"
            )
    limit = slice(None, train_limit)
    return Dataset(
        x_train=to_features(arrays[TRAIN_IMAGES][limit]),
        y_train=arrays[TRAIN_LABELS][limit].astype(np.int64),
        x_test=to_features(arrays[TEST_IMAGES]),
        y_test=arrays[TEST_LABELS].astype(np.int64),
        sha256=digests,
    )


def load_extra_data(
    directory: Path,
) -> tuple[NDArray[np.float32], NDArray[np.int64], dict[str, str]]:
    """Extra training rows from IDX pairs in `directory` (e.g. `digits logs export` output).

    Every `*images-idx3-ubyte[.gz]` file needs its `*labels-idx1-ubyte[.gz]` twin. Returns
    features (n, 784) float32 in [0, 1], labels (n,) int64 and file name -> sha256.
    ValueError names the file and the problem (no pairs, a missing twin, a bad file).
    """
    images = sorted(Path(directory).glob("*images-idx3-ubyte*"))
    if not images:
        raise ValueError(f"extra data: no *images-idx3-ubyte[.gz] files in {directory}")
    xs, ys, digests = [], [], {}
    for image_file in images:
        label_file = image_file.with_name(image_file.name.replace("images-idx3", "labels-idx1"))
        if not label_file.exists():
            raise ValueError(
                f"extra data: {label_file.name} is missing (labels of {image_file.name})"
            )
        paths = {image_file.name: image_file, label_file.name: label_file}
        image_data, digests[image_file.name] = _read(paths, image_file.name)
        label_data, digests[label_file.name] = _read(paths, label_file.name)
        try:
            x, y = decode_images(image_data), decode_labels(label_data)
        except ValueError as err:
            raise ValueError(f"extra data {image_file.name}: {err}") from err
        if len(x) != len(y):
            raise ValueError(f"extra data: {image_file.name} has {len(x)} images, "
                             f"{label_file.name} {len(y)} labels")  # fmt: skip
        xs.append(to_features(x))
        ys.append(y.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys), digests


def train(
    dataset: Dataset, settings: TrainSettings, on_epoch: EpochCallback | None = None
) -> Trained:
    """Fit a fresh MLP with Adam on ``settings.threads`` BLAS threads (None: all usable cores).

    With settings.extra_data, its IDX rows are appended to the training split (load_extra_data).
    Raises core.train.DivergenceError when the loss blows up.
    """
    model = MLP(settings.layer_sizes, seed=settings.seed, loss=settings.loss)
    x_train, y_train = dataset.x_train, dataset.y_train
    if settings.extra_data is not None:
        x_extra, y_extra, _ = load_extra_data(settings.extra_data)
        x_train, y_train = np.concatenate([x_train, x_extra]), np.concatenate([y_train, y_extra])
    config = settings.train_config()
    with blas_threads(settings.threads or available_cores()) as threads:
        result = fit(model, x_train, y_train, config=config, on_epoch=on_epoch)
    return Trained(model, [dict(e) for e in result.history], float(result.seconds), threads)


def evaluate(model: MLP, x: NDArray[np.floating], y: NDArray[np.integer]) -> dict[str, Any]:
    """Test metrics: accuracy, cost J, RMSE, R^2, cross-entropy, per-class accuracy, confusion."""
    return evaluate_probabilities(model.predict_proba(x), y)


# TrainSettings fields that shape the model (where it is stored and read from does not).
_PROVENANCE_FIELDS = {
    *TrainConfig.__dataclass_fields__,
    "layer_sizes",
    "loss",
    "train_limit",
    "min_accuracy",
    "tolerance",
}


def library_versions() -> dict[str, str]:
    """Versions of what computed the weights: Python, NumPy, its BLAS, digits itself."""
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()]
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": ", ".join(blas) or "unknown",
        "digits": package_version(),
    }


def build_manifest(
    settings: TrainSettings,
    trained: Trained,
    metrics: Mapping[str, Any],
    dataset: Dataset,
    decision: GateDecision,
) -> dict[str, Any]:
    """The caller's part of the registry manifest: what was trained, on what, and how well.

    "profile" is the drift reference the server compares live traffic with (core.profile):
    input statistics of the training split, output statistics on the held-out test split.
    """
    dataset_entry: dict[str, Any] = {
        "train_samples": len(dataset.y_train),
        "test_samples": len(dataset.y_test),
        "sha256": dataset.sha256,
    }
    if settings.extra_data is not None:
        _, y_extra, digests = load_extra_data(settings.extra_data)
        dataset_entry["extra"] = {
            "directory": str(settings.extra_data), "samples": len(y_extra), "sha256": digests,
        }  # fmt: skip
    x = dataset.x_train
    return {
        "layer_sizes": list(settings.layer_sizes),
        "loss": settings.loss,
        "metrics": dict(metrics),
        "train_metrics": trained.history[-1] if trained.history else {},
        "history": trained.history,
        "train_seconds": trained.seconds,
        "weights_sha256": weights_digest(trained.model.params),
        # The whole configuration, so a changed default always leaves a trace (nanoGPT keeps its
        # config in every checkpoint); every key can be set again with `digits train`. The BLAS
        # thread count is the one actually used (the setting may be None: all usable cores).
        "training": {
            **settings.model_dump(mode="json", include=_PROVENANCE_FIELDS),
            "threads": trained.threads,
        },
        "libraries": library_versions(),
        "dataset": dataset_entry,
        "profile": reference_profile(
            x,
            trained.model.predict_proba(x),
            dataset.x_test,
            trained.model.predict_proba(dataset.x_test),
        ),
        "gate": {
            "promote": decision.promote,
            "reason": decision.reason,
            "champion_version": decision.champion_version,
            "champion_accuracy": decision.champion_accuracy,
        },
    }


def publish(
    settings: TrainSettings,
    model: MLP,
    manifest: Mapping[str, Any],
    extra_files: Mapping[str, Path],
) -> ModelVersion:
    """Publish a new version (not promoted: see pipeline.promotion.promote_over_champion)."""
    registry = Registry(settings.registry_dir)
    return registry.publish(settings.model_name, dict(model.params), manifest, extra_files)

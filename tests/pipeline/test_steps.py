"""Plain pipeline steps on small generated data: load, train, evaluate, plot and publish."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from core.config import TrainConfig
from core.train import DivergenceError
from pipeline import steps
from pipeline.gate import GateDecision
from pipeline.plots import plot_confusion_matrix, plot_training_curves
from pipeline.promotion import promote_over_champion, weights_digest
from pipeline.settings import TrainSettings
from registry import Registry
from tests.helpers.synthetic import write_synthetic_mnist

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_mnist(directory)
    return directory


def _paths(directory: Path) -> dict[str, Path]:
    return {p.name: p for p in directory.glob("*.gz")}


@pytest.fixture(scope="module")
def dataset(data_dir: Path) -> steps.Dataset:
    return steps.load_dataset(_paths(data_dir))


def test_load_dataset_scales_pixels_and_keeps_labels(dataset: steps.Dataset):
    assert dataset.x_train.shape == (600, 784) and dataset.x_test.shape == (200, 784)
    assert dataset.x_train.dtype == np.float32
    assert float(dataset.x_train.min()) >= 0.0 and float(dataset.x_train.max()) <= 1.0
    assert sorted(np.unique(dataset.y_test).tolist()) == list(range(10))
    assert len(dataset.sha256) == 4


def test_load_dataset_train_limit(data_dir: Path):
    limited = steps.load_dataset(_paths(data_dir), train_limit=50)
    assert len(limited.x_train) == len(limited.y_train) == 50
    assert len(limited.x_test) == 200  # the test set is never cut


def test_load_dataset_names_the_bad_file(data_dir: Path, tmp_path: Path):
    paths = _paths(data_dir)
    bad = tmp_path / steps.TEST_LABELS
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abc"))  # 5 declared, 3 given
    with pytest.raises(ValueError, match=f"{steps.TEST_LABELS}: IDX payload truncated"):
        steps.load_dataset({**paths, steps.TEST_LABELS: bad})
    with pytest.raises(ValueError, match="is missing"):
        steps.load_dataset({k: v for k, v in paths.items() if k != steps.TRAIN_IMAGES})


def test_load_dataset_rejects_image_label_count_mismatch(data_dir: Path, tmp_path: Path):
    other = write_synthetic_mnist(tmp_path / "other", n_train=100, n_test=200) and _paths(
        tmp_path / "other"
    )
    mixed = {**_paths(data_dir), steps.TRAIN_LABELS: other[steps.TRAIN_LABELS]}
    with pytest.raises(ValueError, match=r"600 images but .* 100 labels"):
        steps.load_dataset(mixed)


def test_train_and_evaluate_learn_the_synthetic_digits(dataset: steps.Dataset):
    settings = TrainSettings(epochs=3, batch_size=32, lr=5e-3, validation_split=0.1)
    seen: list[int] = []
    trained = steps.train(dataset, settings, on_epoch=lambda record: seen.append(record["epoch"]))
    assert seen == [1, 2, 3] and len(trained.history) == 3
    assert "val_accuracy" in trained.history[-1]
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    assert metrics["accuracy"] > 0.9
    assert len(metrics["per_class_accuracy"]) == 10
    assert np.sum(metrics["confusion_matrix"]) == 200
    for name in steps.HEADLINE_METRICS:
        assert np.isfinite(metrics[name])


def test_huge_learning_rate_diverges(dataset: steps.Dataset):
    # Adam bounds each step by lr, so only an absurd rate overflows float32 into NaN.
    with pytest.raises(DivergenceError), np.errstate(all="ignore"):
        steps.train(dataset, TrainSettings(epochs=1, lr=1e15), None)


def test_plots_are_png_files(tmp_path: Path):
    history = [
        {"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4},
        {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7},
    ]
    curves = plot_training_curves(history, tmp_path / "curves.png")
    confusion = plot_confusion_matrix(np.eye(10, dtype=int).tolist(), tmp_path / "cm.png")
    for path in (curves, confusion):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_publish_stores_manifest_and_plots_and_promotes(dataset: steps.Dataset, tmp_path: Path):
    settings = TrainSettings(epochs=1, registry_dir=tmp_path / "registry", model_name="t")
    trained = steps.train(dataset, settings)
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    plot = plot_training_curves(trained.history, tmp_path / "curves.png")
    registry = Registry(settings.registry_dir)
    for promote in (True, False):
        decision = GateDecision(True, promote, "because")
        manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
        version = steps.publish(settings, trained.model, manifest, {"curves.png": plot})
        test_set = (dataset.x_test, dataset.y_test)
        kept = promote_over_champion(
            settings.registry_dir, "t", version.version, 0.5, decision, test_set, 0.0
        )
        assert kept == decision
    assert registry.aliases("t") == {"production": 1}
    assert registry.get("t", 1).manifest["weights_sha256"] == weights_digest(trained.model.params)
    version = registry.get("t", 2)
    assert version.manifest["metrics"]["accuracy"] == metrics["accuracy"]
    assert version.manifest["gate"]["reason"] == "because"
    assert version.manifest["dataset"]["sha256"] == dataset.sha256
    assert (version.path / "curves.png").read_bytes()[:8] == PNG_MAGIC
    loaded = registry.load("t", "production")
    np.testing.assert_array_equal(loaded.params["W1"], trained.model.params["W1"])


def test_manifest_records_the_whole_training_configuration(dataset: steps.Dataset, tmp_path: Path):
    settings = TrainSettings(epochs=1, beta2=0.995, schedule="constant", shift_pixels=0)
    trained = steps.train(dataset, settings)
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    decision = GateDecision(True, True, "because")
    manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
    recorded = manifest["training"]
    # Every field of core's TrainConfig is there, with the value that was used ...
    assert set(TrainConfig.__dataclass_fields__) <= set(recorded)
    assert TrainSettings(**recorded).train_config() == settings.train_config()
    assert (recorded["beta2"], recorded["schedule"], recorded["shift_pixels"]) == (
        0.995,
        "constant",
        0,
    )
    # ... and what computed it.
    assert {"python", "numpy", "blas", "digits"} <= set(manifest["libraries"])


@pytest.mark.integration
def test_publish_step_writes_to_an_s3_registry(dataset: steps.Dataset, s3_url: str, tmp_path: Path):
    """The same step with registry_dir = s3://...: the flow needs nothing else for S3."""
    settings = TrainSettings(epochs=1, registry_dir=s3_url, model_name="t")
    assert settings.registry_dir == s3_url  # an URL stays text (a Path would fold its '//')
    trained = steps.train(dataset, settings)
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    plot = plot_training_curves(trained.history, tmp_path / "curves.png")
    decision = GateDecision(True, True, "because")
    manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
    version = steps.publish(settings, trained.model, manifest, {"curves.png": plot})
    test_set = (dataset.x_test, dataset.y_test)
    assert promote_over_champion(s3_url, "t", version.version, 0.5, decision, test_set, 0.0)
    registry = Registry(s3_url)
    assert registry.aliases("t") == {"production": 1}
    loaded = registry.load("t", "production")
    np.testing.assert_array_equal(loaded.params["W1"], trained.model.params["W1"])
    assert loaded.manifest["files"]["curves.png"]["sha256"]

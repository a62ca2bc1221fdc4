"""`--extra-data`: IDX pairs (e.g. exported prediction logs) join the training split and are
recorded in the manifest with their sha256; broken directories fail with a clear reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from core.features import to_features
from core.idx import encode_idx
from pipeline import steps
from pipeline.gate import GateDecision
from pipeline.settings import TrainSettings
from tests.helpers.synthetic import write_synthetic_mnist


def corner_patches(n: int) -> np.ndarray:
    """A bright patch where no synthetic digit ever is (the grid's last, unused cell)."""
    images = np.random.default_rng(5).integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    images[:, 20:28, 22:28] = 230
    return images


def write_pair(directory: Path, images: np.ndarray, labels: np.ndarray) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "logged-images-idx3-ubyte.gz").write_bytes(encode_idx(images, compress=True))
    (directory / "logged-labels-idx1-ubyte.gz").write_bytes(encode_idx(labels, compress=True))


def test_extra_rows_are_learned_and_recorded(tmp_path: Path):
    write_synthetic_mnist(tmp_path / "mnist")
    dataset = steps.load_dataset({p.name: p for p in (tmp_path / "mnist").glob("*.gz")})
    extra = tmp_path / "extra"
    write_pair(extra, corner_patches(300), np.full(300, 7, np.uint8))
    settings = TrainSettings(epochs=3, extra_data=extra, registry_dir=tmp_path / "models")
    trained = steps.train(dataset, settings)
    probe = to_features(corner_patches(50))
    assert np.mean(trained.model.predict(probe) == 7) > 0.9  # only the extra rows teach this
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    decision = GateDecision(True, True, "")
    manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
    recorded = manifest["dataset"]["extra"]
    assert recorded["samples"] == 300
    for name in ("logged-images-idx3-ubyte.gz", "logged-labels-idx1-ubyte.gz"):
        assert recorded["sha256"][name] == hashlib.sha256((extra / name).read_bytes()).hexdigest()


def test_an_empty_directory_names_the_problem(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no .*images-idx3-ubyte"):
        steps.load_extra_data(tmp_path / "empty")


def test_images_without_labels_name_the_missing_file(tmp_path: Path):
    write_pair(tmp_path / "x", corner_patches(3), np.zeros(3, np.uint8))
    (tmp_path / "x" / "logged-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=r"logged-labels-idx1-ubyte\.gz is missing"):
        steps.load_extra_data(tmp_path / "x")


def test_mismatched_counts_and_bad_labels_are_refused(tmp_path: Path):
    write_pair(tmp_path / "x", corner_patches(3), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="3 images"):
        steps.load_extra_data(tmp_path / "x")
    write_pair(tmp_path / "y", corner_patches(2), np.asarray([1, 12], np.uint8))
    with pytest.raises(ValueError, match="label 12"):
        steps.load_extra_data(tmp_path / "y")


def test_the_cli_flag_sets_an_absolute_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from cli.main import build_parser
    from cli.train import settings_from_args

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["train", "--extra-data", "exported"])
    assert settings_from_args(args).extra_data == tmp_path / "exported"

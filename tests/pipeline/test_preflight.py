"""Preflight: unusable destinations fail at once, naming the flag, before any download."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from pipeline.preflight import PreflightError, check_destinations, check_directory
from pipeline.settings import TrainSettings


def test_a_file_as_registry_is_refused_naming_the_flag(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "registry.txt"
    not_a_dir.write_text("x")
    with pytest.raises(PreflightError, match=r"^--registry .*registry.txt: not a directory"):
        check_destinations(TrainSettings(registry_dir=not_a_dir, data_dir=tmp_path / "cache"))


def test_a_registry_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    settings = TrainSettings(registry_dir=tmp_path / "file" / "models", data_dir=tmp_path)
    with pytest.raises(PreflightError, match=r"cannot be created, .*file is not a directory"):
        check_destinations(settings)
    assert (tmp_path / "file").read_text() == "x"


def test_a_model_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "digits").write_text("x")
    with pytest.raises(PreflightError, match=r"digits is not a directory"):
        check_destinations(TrainSettings(registry_dir=tmp_path, data_dir=tmp_path / "cache"))


def test_usable_destinations_pass_and_nothing_is_created(tmp_path: Path) -> None:
    settings = TrainSettings(registry_dir=tmp_path / "a" / "models", data_dir=tmp_path / "c")
    check_destinations(settings)
    assert list(tmp_path.iterdir()) == []


def test_offline_reads_the_cache_only(tmp_path: Path) -> None:
    """A missing cache is left to the download step (it lists the missing files); a file is not."""
    check_directory(tmp_path / "missing", "--data-dir", "the dataset cache", writable=False)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PreflightError, match=r"^--data-dir .*file: not a directory"):
        check_directory(tmp_path / "file", "--data-dir", "the dataset cache", writable=False)


def test_digits_train_fails_fast_on_a_bad_registry_even_with_if_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--if-empty used to read an unusable registry as empty (and then train for minutes)."""
    not_a_dir = tmp_path / "passwd"
    not_a_dir.write_text("root:x:0:0\n")
    code = main(["train", "--registry", str(not_a_dir), "--if-empty", "--offline",
                 "--data-dir", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"digits train: error: --registry {not_a_dir}: not a directory " \
        "(the model registry must be a directory)\n"  # fmt: skip

"""Registry load refuses damaged versions: flipped bytes, missing files, wrong tensors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from registry import IntegrityError, Registry
from tests.helpers.registry_data import flip_byte, toy_params


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.mark.parametrize(
    ("file_name", "offset"),
    [
        ("weights.safetensors", 20),  # inside the safetensors JSON header
        ("weights.safetensors", -1),  # last byte of b3
        ("manifest.json", 40),
        ("manifest.sha256", 0),
        ("notes.txt", 0),
    ],
)
def test_flipped_byte_is_detected_at_load(registry: Registry, file_name: str, offset: int) -> None:
    published = registry.publish("digits", toy_params(), {}, extra_files={"notes.txt": b"hello"})
    flip_byte(published.path / file_name, offset)
    expected_name = "manifest.json" if file_name.startswith("manifest") else file_name
    with pytest.raises(IntegrityError, match=expected_name):
        registry.load("digits")


def test_missing_or_truncated_file_is_detected(registry: Registry) -> None:
    published = registry.publish("digits", toy_params(), {}, extra_files={"notes.txt": b"hello"})
    (published.path / "notes.txt").unlink()
    with pytest.raises(IntegrityError, match=r"notes\.txt.*missing"):
        registry.load("digits")
    second = registry.publish("digits", toy_params(), {})
    weights = second.path / "weights.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(IntegrityError, match=r"weights\.safetensors: size"):
        registry.load("digits", 2)


def _rewrite_consistently(version_dir: Path, weights: bytes) -> None:
    """Replace the weights and update every checksum, so only the tensor table disagrees."""
    for path in version_dir.iterdir():
        path.chmod(0o644)
    (version_dir / "weights.safetensors").write_bytes(weights)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    entry = {"sha256": hashlib.sha256(weights).hexdigest(), "size": len(weights)}
    manifest["files"]["weights.safetensors"] = entry
    text = json.dumps(manifest).encode()
    (version_dir / "manifest.json").write_bytes(text)
    digest = hashlib.sha256(text).hexdigest()
    (version_dir / "manifest.sha256").write_text(f"{digest}  manifest.json\n")


def test_tensors_are_checked_against_the_manifest(registry: Registry) -> None:
    import safetensors.numpy

    published = registry.publish("digits", toy_params(), {})
    params = {k: np.ascontiguousarray(v) for k, v in toy_params().items()}
    params["b3"] = np.zeros((11, 1), dtype=np.float32)
    _rewrite_consistently(published.path, safetensors.numpy.save(params))
    with pytest.raises(IntegrityError, match=r"tensor 'b3' is float32\[11, 1\]"):
        registry.load("digits")

    params.pop("b3")
    _rewrite_consistently(published.path, safetensors.numpy.save(params))
    with pytest.raises(IntegrityError, match="do not match the manifest"):
        registry.load("digits")


def test_version_directory_must_match_its_manifest(registry: Registry) -> None:
    published = registry.publish("digits", toy_params(), {})
    copy = published.path.parent / "5"
    copy.mkdir()
    for path in published.path.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with pytest.raises(IntegrityError, match="version 1, not 'digits' version 5"):
        registry.load("digits", 5)

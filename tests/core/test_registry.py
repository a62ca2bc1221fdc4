"""Registry round trip, manifest contents, read-only versions, integrity checks and name rules."""

from __future__ import annotations

import hashlib
import json
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.registry import (
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    Registry,
    RegistryError,
    default_root,
)

SHAPES = {"W1": (128, 784), "b1": (128, 1), "W2": (40, 128), "b2": (40, 1), "W3": (10, 40)}
SHAPES["b3"] = (10, 1)


def toy_params(seed: int = 0, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """MLP 784-128-40-10 parameters; the weight matrices are deliberately non-contiguous views."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, (rows, cols) in SHAPES.items():
        if key.startswith("W"):
            # Transposed view (Fortran order) of a (cols, rows) array.
            params[key] = rng.standard_normal((cols, rows)).astype(dtype).T
        else:
            # Every other column of a wider array: strided, neither C nor F contiguous.
            params[key] = rng.standard_normal((rows, 2 * cols)).astype(dtype)[:, ::2]
    return params


def toy_manifest(seed: int = 0) -> dict[str, Any]:
    return {
        "loss": "cross_entropy",
        "seed": seed,
        "hyperparameters": {"lr": 0.001, "epochs": 2, "batch_size": 128},
        "metrics": {"accuracy": 0.9731, "cross_entropy": 0.09},
        "train_metrics": {"accuracy": 0.99},
        "datasets": {"train-images-idx3-ubyte.gz": "ab" * 32},
        "git_revision": "0123abc",
        "parent_version": None,
    }


def flip_byte(path: Path, offset: int) -> None:
    path.chmod(0o644)  # published files are read-only; the test plays the disk fault
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact_for_non_contiguous_arrays(registry: Registry, dtype: Any) -> None:
    params = toy_params(seed=3, dtype=dtype)
    assert not params["W1"].flags.c_contiguous and not params["b1"].flags.c_contiguous
    # Values that a lossy or re-encoding path would change.
    params["b3"] = params["b3"].copy()
    params["b3"][:5, 0] = [np.nan, np.inf, -0.0, np.finfo(dtype).tiny / 2, -np.inf]

    published = registry.publish("digits", params, toy_manifest())
    loaded = registry.load("digits", published.version)

    assert loaded.version == published.version == 1
    assert sorted(loaded.params) == sorted(params)
    for key, original in params.items():
        restored = loaded.params[key]
        assert restored.dtype == dtype and restored.shape == original.shape
        assert restored.tobytes() == np.ascontiguousarray(original).tobytes(), key


@settings(max_examples=12, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.float16]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
    ),
    transpose=st.booleans(),
    step=st.integers(1, 3),
)
def test_any_array_layout_round_trips_bit_exact(
    array: np.ndarray, transpose: bool, step: int
) -> None:
    view = (array.T if transpose else array)[..., ::step]
    with tempfile.TemporaryDirectory() as root:
        registry = Registry(root)
        registry.publish("prop", {"x": view}, {})
        restored = registry.load("prop").params["x"]
    assert restored.dtype == view.dtype and restored.shape == view.shape
    assert restored.tobytes() == np.ascontiguousarray(view).tobytes()


def test_default_root_comes_from_the_environment() -> None:
    assert default_root({}) == Path("models")
    assert default_root({"DIGITS_REGISTRY": ""}) == Path("models")
    assert default_root({"DIGITS_REGISTRY": "/srv/models"}) == Path("/srv/models")


def test_same_params_give_identical_weight_files(registry: Registry) -> None:
    first = registry.publish("digits", toy_params(1), toy_manifest())
    second = registry.publish("digits", toy_params(1), toy_manifest())
    assert (first.path / "weights.safetensors").read_bytes() == (
        second.path / "weights.safetensors"
    ).read_bytes()


def test_manifest_records_caller_fields_files_and_tensors(registry: Registry) -> None:
    curves = registry.root.parent / "curves.png"
    curves.write_bytes(b"\x89PNG fake image bytes")
    before = datetime.now(UTC).replace(microsecond=0)
    published = registry.publish(
        "digits",
        toy_params(),
        {
            **toy_manifest(seed=7),
            "metrics": {"accuracy": np.float32(0.5), "n": np.int64(3)},
            "per_class": np.array([0.25, 0.5]),
            "sizes": (1, 2),
        },
        extra_files={"curves.png": curves, "notes.txt": b"trained on a laptop"},
    )
    manifest = json.loads((published.path / "manifest.json").read_text())
    assert manifest == published.manifest == registry.get("digits", 1).manifest

    assert (manifest["name"], manifest["version"], manifest["seed"]) == ("digits", 1, 7)
    assert manifest["layer_sizes"] == [784, 128, 40, 10]  # inferred from W1..W3
    assert manifest["metrics"] == {"accuracy": 0.5, "n": 3}
    assert manifest["per_class"] == [0.25, 0.5] and manifest["sizes"] == [1, 2]
    assert manifest["git_revision"] == "0123abc" and manifest["parent_version"] is None
    assert manifest["package_version"]
    created = datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(UTC)
    assert manifest["tensors"]["W1"] == {"shape": [128, 784], "dtype": "float32"}
    assert sorted(manifest["files"]) == ["curves.png", "notes.txt", "weights.safetensors"]
    for file_name, entry in manifest["files"].items():
        data = (published.path / file_name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    checksum = (published.path / "manifest.sha256").read_text().split()[0]
    assert checksum == hashlib.sha256((published.path / "manifest.json").read_bytes()).hexdigest()


def test_published_version_is_read_only(registry: Registry) -> None:
    published = registry.publish("digits", toy_params(), toy_manifest())
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    assert published.path.stat().st_mode & write_bits == 0
    for path in published.path.iterdir():
        assert path.stat().st_mode & write_bits == 0, path


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"version": 3}, "written by the registry"),
        ({"metrics": {"r2": float("nan")}}, "JSON"),
        ({"callback": object()}, "JSON"),
    ],
)
def test_bad_manifest_is_rejected_before_anything_is_written(
    registry: Registry, manifest: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        registry.publish("digits", toy_params(), manifest)
    assert not registry.root.exists()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"W1": np.array(["a", "b"], dtype=object)},
        {"W1": np.zeros(2, dtype=np.complex128)},
        {"__metadata__": np.zeros(2)},
        {"../W1": np.zeros(2)},
        {"": np.zeros(2)},
    ],
)
def test_bad_params_are_rejected(registry: Registry, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"params is empty|unsupported dtype|parameter name"):
        registry.publish("digits", params, {})


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


BAD_NAMES = ["", ".", "..", "../evil", "a/b", "/abs", "Digits", "a..b", "-x", "x" * 65, "a b"]


@pytest.mark.parametrize("name", [*BAD_NAMES, "nul\x00"])
def test_path_traversal_and_odd_model_names_are_rejected(tmp_path: Path, name: str) -> None:
    root = tmp_path / "models"
    registry = Registry(root)
    with pytest.raises(InvalidNameError, match="invalid model name"):
        registry.publish(name, toy_params(), {})
    for call in (registry.load, registry.list_versions, registry.aliases, registry.state_token):
        with pytest.raises(InvalidNameError):
            call(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("alias", [*BAD_NAMES, "latest", "7", "007"])
def test_bad_aliases_are_rejected(registry: Registry, alias: str) -> None:
    registry.publish("digits", toy_params(), {})
    with pytest.raises(InvalidNameError, match="invalid alias"):
        registry.set_alias("digits", alias, 1)
    assert registry.aliases("digits") == {}
    assert sorted(p.name for p in registry.root.iterdir()) == ["digits"]


@pytest.mark.parametrize("file_name", ["../x", "sub/x.png", "manifest.json", ".hidden", ""])
def test_bad_extra_file_names_are_rejected(registry: Registry, file_name: str) -> None:
    with pytest.raises(InvalidNameError):
        registry.publish("digits", toy_params(), {}, extra_files={file_name: b"x"})
    assert registry.list_models() == []


def test_unknown_model_version_and_alias_give_clear_errors(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="model 'digits' not found"):
        registry.load("digits")
    registry.publish("digits", toy_params(), {})
    with pytest.raises(NotFoundError, match=r"no version 9 .*versions: 1\)"):
        registry.load("digits", 9)
    with pytest.raises(NotFoundError, match=r"no alias 'staging' \(aliases: none\)"):
        registry.load("digits", "staging")
    with pytest.raises(NotFoundError, match=r"model 'other' not found .*models: digits\)"):
        registry.get("other", 1)
    # The error types fit the CLI's generic handling and a caller's `except LookupError`.
    assert issubclass(NotFoundError, LookupError) and issubclass(IntegrityError, RegistryError)

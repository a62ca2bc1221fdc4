"""Registry round trip, manifest contents, read-only versions; shared toy params for its tests."""

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

from registry import (
    Registry,
    default_root,
)
from tests.helpers.registry_data import toy_manifest, toy_params


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

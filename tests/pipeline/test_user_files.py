"""A user's own dataset files are read, recognised by content and never deleted or replaced."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.idx import encode_idx
from pipeline.download import DOWNLOADS_DIR, MNIST_FILES, DownloadError, MnistFile, ensure_mnist
from pipeline.verify import candidate_names, identify

NAMES = [spec.name for spec in MNIST_FILES]


def _arrays(seed: int) -> dict[str, np.ndarray]:
    """Small stand-ins for the four files (uint8 images 28x28 and labels 0-9)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=30, dtype=np.uint8)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    return {NAMES[0]: images, NAMES[1]: labels, NAMES[2]: images[:10], NAMES[3]: labels[:10]}


def _specs(arrays: dict[str, np.ndarray]) -> tuple[MnistFile, ...]:
    """Specs as for MNIST: sha256 of the mirror's gzip bytes and of the IDX content."""
    specs = []
    for name, array in arrays.items():
        served = gzip.compress(encode_idx(array), compresslevel=6, mtime=1_000_000)
        content = hashlib.sha256(encode_idx(array)).hexdigest()
        spec = MnistFile(name, hashlib.sha256(served).hexdigest(), len(served), content)
        specs.append(spec)
    return tuple(specs)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory``: its bytes and modification time, to prove nothing moved."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_candidate_names_cover_unpacked_and_dotted_names():
    assert candidate_names("t10k-images-idx3-ubyte.gz") == (
        "t10k-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte",
        "t10k-images.idx3-ubyte",
        "t10k-images.idx3-ubyte.gz",
    )


@pytest.mark.parametrize("layout", ["regzipped", "unpacked", "dotted"])
def test_same_data_in_another_encoding_is_accepted_untouched(tmp_path: Path, layout: str):
    arrays = _arrays(0)
    specs = _specs(arrays)
    for name, array in arrays.items():
        raw = encode_idx(array)
        if layout == "regzipped":  # what `gzip -9 -n` makes: other bytes, same content
            (tmp_path / name).write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        else:
            target = candidate_names(name)[1 if layout == "unpacked" else 2]
            (tmp_path / target).write_bytes(raw)
    before = _snapshot(tmp_path)
    paths = ensure_mnist(tmp_path, [], offline=True, files=specs)
    assert set(paths) == set(NAMES)
    assert all(path.parent == tmp_path for path in paths.values())
    assert _snapshot(tmp_path) == before  # nothing deleted, rewritten or added


def test_other_data_offline_is_reported_and_kept(tmp_path: Path, caplog):
    specs = _specs(_arrays(0))
    for name, array in _arrays(1).items():  # a Fashion-MNIST-like set: same names and shapes
        (tmp_path / name).write_bytes(gzip.compress(encode_idx(array), mtime=0))
    before = _snapshot(tmp_path)
    with caplog.at_level(logging.WARNING), pytest.raises(DownloadError) as err:
        ensure_mnist(tmp_path, [], offline=True, files=specs)
    message = str(err.value)
    assert "\n" not in message
    for name in NAMES:
        assert f"{tmp_path / name} holds gzip of IDX uint8" in message
    assert "(30, 28, 28)" in message and "not MNIST's train-images-idx3-ubyte.gz" in message
    assert "left untouched" in caplog.text and "deleting" not in caplog.text
    assert _snapshot(tmp_path) == before


def test_other_data_online_is_kept_and_mnist_downloaded_beside_it(tmp_path: Path, mirror_factory):
    arrays = _arrays(0)
    specs = _specs(arrays)
    served = tmp_path / "served"
    served.mkdir()
    for name, array in arrays.items():
        (served / name).write_bytes(gzip.compress(encode_idx(array), mtime=1_000_000))
    data = tmp_path / "data"
    data.mkdir()
    (data / NAMES[0]).write_bytes(b"<html>not found</html>")  # a saved error page
    (data / candidate_names(NAMES[2])[2]).write_bytes(encode_idx(_arrays(1)[NAMES[2]]))
    before = _snapshot(data)
    server = mirror_factory(served)
    paths = ensure_mnist(data, [server.url], files=specs, base_delay_s=0.0)
    after = _snapshot(data)
    assert {k: after[k] for k in before} == before  # the user's files are as they were
    assert sorted(set(after) - set(before)) == sorted(f"{DOWNLOADS_DIR}/{n}" for n in NAMES)
    assert all(path.parent == data / DOWNLOADS_DIR for path in paths.values())
    assert sum(server.requests.values()) == 4


def test_non_idx_file_is_named_as_such(tmp_path: Path):
    specs = _specs(_arrays(0))
    (tmp_path / NAMES[1]).write_bytes(b"<html>oops</html>")
    with pytest.raises(DownloadError, match=r"holds not an IDX file \(first bytes 3c68746d\)"):
        ensure_mnist(tmp_path, [], offline=True, files=specs[1:2])
    assert (tmp_path / NAMES[1]).read_bytes() == b"<html>oops</html>"


def test_zip_bomb_is_not_inflated(tmp_path: Path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(bytes(4_000_000)))
    assert identify(path, max_bytes=1_000_000).header == "gzip of over 1000000 bytes"


@pytest.mark.skipif(not os.environ.get("MNIST_DIR"), reason="MNIST_DIR (real MNIST files) not set")
def test_real_mnist_regzipped_and_unpacked_verifies_with_builtin_checksums(tmp_path: Path):
    """The field case: genuine MNIST re-gzipped with `gzip -9 -n`, or unpacked with dots."""
    source = Path(os.environ["MNIST_DIR"])
    gzip_tool = shutil.which("gzip")
    for index, spec in enumerate(MNIST_FILES):
        raw = gzip.decompress((source / spec.name).read_bytes())
        if index in (0, 3):  # dotted unpacked names (train-images.idx3-ubyte, ...)
            (tmp_path / candidate_names(spec.name)[2]).write_bytes(raw)
            continue
        target = tmp_path / spec.name.removesuffix(".gz")
        target.write_bytes(raw)
        if gzip_tool:  # the real tool when present, else the same encoding from Python
            subprocess.run([gzip_tool, "-9", "-n", str(target)], check=True)
        else:
            (tmp_path / spec.name).write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
            target.unlink()
    before = _snapshot(tmp_path)
    assert all((tmp_path / n).read_bytes() != (source / n).read_bytes() for n in NAMES[1:3])
    paths = ensure_mnist(tmp_path, [], offline=True)
    assert set(paths) == set(NAMES)
    assert _snapshot(tmp_path) == before


def test_file_mirror_with_unpacked_and_dotted_files(tmp_path: Path):
    """`--mirror file:///dir/` (what the final error suggests) takes any name a copy may have."""
    arrays = _arrays(0)
    specs = _specs(arrays)
    source = tmp_path / "unpacked"
    source.mkdir()
    for index, (name, array) in enumerate(arrays.items()):
        (source / candidate_names(name)[1 + index % 3]).write_bytes(encode_idx(array))
    before = _snapshot(source)
    paths = ensure_mnist(tmp_path / "data", [source.as_uri() + "/"], files=specs)
    assert set(paths) == set(NAMES)
    assert all(path.parent == tmp_path / "data" / DOWNLOADS_DIR for path in paths.values())
    assert _snapshot(source) == before

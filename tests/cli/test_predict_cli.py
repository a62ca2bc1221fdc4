"""`digits predict` end to end: a real server on 127.0.0.1 and the CLI on pictures drawn here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cli.exits import ExitCode
from cli.main import main
from core import MLP
from core.idx import encode_idx
from registry import Registry
from service.client.images import load_image
from service.rpc.server import create_server
from service.settings import ServiceSettings
from tests.helpers.certs import make_pki
from tests.helpers.servers import Running

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAYERS = (784, 128, 40, 10)


@pytest.fixture(scope="module")
def predict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MLP]]:
    """A registry holding one seeded model (version 1 = production) and a server over it."""
    root = tmp_path_factory.mktemp("registry")
    model = MLP(LAYERS, seed=3)
    registry = Registry(root)
    manifest = {"layer_sizes": list(LAYERS), "loss": "cross_entropy", "metrics": {}}
    version = registry.publish("digits", model.params, manifest).version
    registry.set_alias("digits", "production", version)
    settings = ServiceSettings(  # V2 off: tritonclient may share this pytest process
        registry=root, port=0, metrics_port=-1, poll_interval_s=0, enable_v2=False
    )
    server, port = create_server(settings)
    server.start()
    try:
        yield f"127.0.0.1:{port}", model
    finally:
        server.stop(grace=None)


@pytest.fixture(scope="module")
def drawings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A dark-on-light ring ("0") and a light-on-dark bar ("1"), as PNG files."""
    folder = tmp_path_factory.mktemp("drawings")
    ring = Image.new("L", (160, 160), 255)
    ImageDraw.Draw(ring).ellipse((40, 25, 115, 135), outline=0, width=12)
    ring.save(folder / "ring.png")
    bar = Image.new("L", (100, 100), 0)
    ImageDraw.Draw(bar).rectangle((45, 10, 55, 90), fill=255)
    bar.save(folder / "bar.png")
    return folder / "ring.png", folder / "bar.png"


def _expected(model: MLP, picture: Path) -> np.ndarray:
    pixels = load_image(picture).reshape(1, 784).astype(np.float64) / 255.0
    return model.predict_proba(pixels)[0]


def test_json_output_matches_the_model(predict_server, drawings, capsys) -> None:
    target, model = predict_server
    assert main(["predict", "--target", target, "--json", *map(str, drawings)]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert [row["file"] for row in rows] == [str(p) for p in drawings]
    for row, picture in zip(rows, drawings, strict=True):
        expected = _expected(model, picture)
        np.testing.assert_allclose(row["probabilities"], expected, atol=1e-5)
        assert row["label"] == int(expected.argmax())
        assert row["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
        assert (row["model"], row["version"]) == ("digits", 1)


def test_top_k_table_lists_the_best_classes(predict_server, drawings, capsys) -> None:
    target, model = predict_server
    ring = drawings[0]
    assert main(["predict", "--target", target, "--top-k", "3", "--version", "1", str(ring)]) == 0
    header, line = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:4] == ["file", "label", "prob", "version"]
    assert header.split()[4:] == ["top1", "top2", "top3"]
    best = np.argsort(-_expected(model, ring))[:3]
    assert [int(cell.split(":")[0]) for cell in line.split()[4:]] == best.tolist()


def test_unknown_version_is_one_line_not_found(predict_server, drawings, capsys) -> None:
    target, _ = predict_server
    assert (
        main(["predict", "--target", target, "--version", "99", str(drawings[0])])
        == ExitCode.SERVICE
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NOT_FOUND" in err


def test_unreachable_server_is_one_line_unavailable(drawings, capsys) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert (
        main(["predict", "--target", f"127.0.0.1:{port}", "--timeout", "5", str(drawings[0])])
        == ExitCode.SERVICE
    )
    err = capsys.readouterr().err
    assert err.startswith("digits predict: error: ") and err.count("\n") == 1
    assert "UNAVAILABLE" in err


def test_bad_file_is_one_line_error(predict_server, tmp_path, capsys) -> None:
    target, _ = predict_server
    (tmp_path / "notes.png").write_text("not a picture")
    assert main(["predict", "--target", target, str(tmp_path / "notes.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.png: not a picture (not PNG, JPEG" in err


def test_console_script_reads_pictures_and_idx(predict_server, drawings, tmp_path) -> None:
    target, model = predict_server
    archive = np.stack([load_image(drawings[0]), load_image(drawings[1])])
    (tmp_path / "two.idx").write_bytes(encode_idx(archive))
    command = [
        str(Path(sys.executable).parent / "digits"),
        "predict",
        "--target",
        target,
        "--json",
        str(drawings[1]),
        str(tmp_path / "two.idx"),
    ]
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["predictions"]
    assert [row["file"] for row in rows] == [
        str(drawings[1]),
        f"{tmp_path / 'two.idx'}[0]",
        f"{tmp_path / 'two.idx'}[1]",
    ]
    expected = [
        _expected(model, drawings[1]),
        _expected(model, drawings[0]),
        _expected(model, drawings[1]),
    ]
    for row, probabilities in zip(rows, expected, strict=True):
        np.testing.assert_allclose(row["probabilities"], probabilities, atol=1e-5)


def test_mutual_tls_options(
    registry: Registry, start_server: Callable[..., Running], drawings, tmp_path: Path, capsys
) -> None:
    ca, server, client = make_pki(tmp_path)
    running = start_server(
        registry, tls_cert=server.cert, tls_key=server.key, tls_client_ca=ca.cert
    )
    base = ["predict", "--target", running.target, "--tls-ca", str(ca.cert), str(drawings[0])]
    assert (
        main([*base, "--tls-cert", str(client.cert), "--tls-key", str(client.key), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["predictions"][0]["version"] == 1
    assert main(base) == ExitCode.SERVICE  # no client certificate: the handshake is refused
    assert "UNAVAILABLE" in capsys.readouterr().err
    assert main([*base, "--tls-cert", str(client.cert)]) == 2
    assert "--tls-cert and --tls-key must be given together" in capsys.readouterr().err


def test_one_bad_file_among_many_still_answers_the_others(
    predict_server, drawings, tmp_path, capsys
) -> None:
    target, model = predict_server
    (tmp_path / "notes.png").write_text("not a picture")
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    files = [drawings[0], tmp_path / "notes.png", drawings[1], tmp_path / "blank.png"]
    assert main(["predict", "--target", target, "--json", *map(str, files)]) == ExitCode.FAILED
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert [row["file"] for row in document["predictions"]] == [str(drawings[0]), str(drawings[1])]
    for row, picture in zip(document["predictions"], drawings, strict=True):
        np.testing.assert_allclose(row["probabilities"], _expected(model, picture), atol=1e-5)
    assert [e["file"] for e in document["errors"]] == [str(files[1]), str(files[3])]
    lines = captured.err.splitlines()
    assert len(lines) == 2 and all(line.startswith("digits predict: error: ") for line in lines)
    assert "notes.png: not a picture" in lines[0] and "blank.png: no digit found" in lines[1]
    assert "--invert" not in captured.err  # no flag can help a blank picture

    assert main(["predict", "--target", target, *map(str, files)]) == ExitCode.FAILED  # table too
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and table[1].startswith(str(drawings[0]))


def test_show_input_saves_what_the_model_sees(predict_server, drawings, tmp_path, capsys) -> None:
    target, _ = predict_server
    single = tmp_path / "seen.png"
    assert main(["predict", "--target", target, "--show-input", str(single), str(drawings[0])]) == 0
    with Image.open(single) as seen:
        assert seen.size == (28, 28) and seen.mode == "L"
        np.testing.assert_array_equal(np.asarray(seen), load_image(drawings[0]))
    archive = np.stack([load_image(drawings[1])] * 2)
    (tmp_path / "two.idx").write_bytes(encode_idx(archive))
    folder = tmp_path / "inputs"
    files = [str(drawings[0]), str(tmp_path / "two.idx")]
    assert main(["predict", "--target", target, "--show-input", str(folder), *files]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["0000-ring.png", "0001-two-0.png",
                                                        "0002-two-1.png"]  # fmt: skip
    several = str(tmp_path / "several.png")
    assert main(["predict", "--target", target, "--show-input", several, *files]) == 2  # usage
    assert "3 images; give a directory" in capsys.readouterr().err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_show_input_never_overwrites_an_input_or_any_existing_file(
    predict_server, tmp_path, capsys
) -> None:
    """The field case: `--show-input mine.png mine.png` replaced the user's picture with the
    28x28 rendering. Every existing file must survive byte for byte, with a one-line refusal."""
    target, _ = predict_server
    mine = tmp_path / "mine.png"
    ring = Image.new("L", (160, 160), 255)
    ImageDraw.Draw(ring).ellipse((40, 25, 115, 135), outline=0, width=12)
    ring.save(mine)
    photo = tmp_path / "seven.jpg"
    ring.save(photo)
    other = tmp_path / "other.png"
    other.write_bytes(b"someone else's file")
    before = _snapshot(tmp_path)
    refusals = {
        str(mine): "is one of the input files",
        str(other): "exists and is a file; pick a new .png name or a directory",
        str(photo): "is one of the input files",
    }
    for show, why in refusals.items():
        code = main(["predict", "--target", target, "--show-input", show, str(mine), str(photo)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == ExitCode.USAGE and len(err) == 1
        assert f"--show-input {show}: {why}" in err[0]
    code = main(["predict", "--target", target, "--show-input", str(photo), str(mine)])
    assert code == ExitCode.USAGE  # an existing non-PNG file: not "[Errno 17] File exists"
    assert "exists and is a file, not a directory" in capsys.readouterr().err
    code = main(["predict", "--target", target, "--show-input", str(tmp_path / "n.jpg"), str(mine)])
    assert code == ExitCode.USAGE and "saved as PNG" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before and not (tmp_path / "n.jpg").exists()


def test_show_input_directory_keeps_existing_files(predict_server, drawings, tmp_path) -> None:
    """A directory that already holds files (a previous run's, or the inputs themselves) keeps
    them all: clashing names get a numbered suffix instead."""
    target, _ = predict_server
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "0000-ring.png").write_bytes(b"an earlier run")
    picture = folder / "0001-bar.png"  # an input with the very name bar.png's rendering gets
    picture.write_bytes(drawings[1].read_bytes())
    before = _snapshot(folder)
    args = ["predict", "--target", target, "--show-input", str(folder), *map(str, drawings)]
    assert main([*args, str(picture)]) == 0
    assert main([*args, str(picture)]) == 0
    after = _snapshot(folder)
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == [
        "0000-ring-2.png", "0000-ring-3.png", "0001-bar-2.png", "0001-bar-3.png",
        "0002-0001-bar-2.png", "0002-0001-bar.png",
    ]  # fmt: skip
    with Image.open(folder / "0001-bar-2.png") as seen:
        np.testing.assert_array_equal(np.asarray(seen), load_image(drawings[1]))

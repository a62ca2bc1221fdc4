"""Documented commands run for real, as written, in a fresh temporary directory.

What is run (each found in the docs by tests.helpers.doc_blocks.find_command, so a doc that
renames or drops it fails here): the `digits models` session of docs/registry.md (outputs
compared line by line) and README's models commands; README's `digits serve`, docs/service.md's
`python -m service.healthcheck` and `python -m service`, README's and docs/benchmarks.md's
`digits predict` lines; docs/pipeline.md's quick-run `digits train` (real MNIST from a file://
mirror of $MNIST_DIR, skipped when unset). The harness only swaps the documented ports 50051 and
9100 for free ones (other tests and servers share the machine) and maps `digits` /
`.venv/bin/digits` / `python` to this interpreter (`digits` commands other than `serve` run
in-process through cli.main.main: the same code without an interpreter start each).
Everything else is only parsed (tests/docs/test_commands_parse.py): `make run` / `make test`
(a venv install and the whole suite), `digits schedule` (a Prefect server that stays up),
`digits train` with the defaults (20 epochs, public mirrors), docker/kubectl, and the TLS lines
naming hosts and certificates that do not exist here.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from core.idx import encode_idx
from registry import Registry
from tests.helpers.doc_blocks import REPO, Command, blocks, find_command, program_of, transcript
from tests.helpers.toy_models import publish, toy_params

pytestmark = pytest.mark.integration

DOC_PORTS = ("50051", "9100")
_PROGRAMS = {"digits": ["-m", "cli"], "healthcheck": ["-m", "service.healthcheck"],
             "service": ["-m", "service"]}  # fmt: skip


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _as_run(command: Command, ports: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of a documented command: this interpreter, the documented ports swapped."""

    def swap(word: str) -> str:
        for documented, real in ports.items():
            word = re.sub(rf"\b{documented}\b", real, word)
        return word

    program = program_of(command)
    assert program is not None, command.line
    kind, args = program
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITS_", "PREFECT_"))}
    env.update({name: swap(value) for name, value in command.env.items()})
    env.update(PYTHONPATH=str(REPO), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return [sys.executable, *_PROGRAMS[kind], *(swap(a) for a in args)], env


def _run(command: Command, cwd: Path, ports: dict[str, str] | None = None, **env: str) -> Any:
    """Run a documented command to completion; `digits` ones in-process (cheaper, same code)."""
    argv, full_env = _as_run(command, ports or {})
    full_env.update(env)
    if argv[1:3] == ["-m", "cli"] and not command.env and not env:
        return _in_process(argv[3:], cwd)
    return subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def _in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _check_session(steps: list[tuple[Command, list[str]]], cwd: Path) -> None:
    """Run each `$ command` and compare what it prints with the lines the docs show under it."""
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    for command, expected in steps:
        if program_of(command) is None:  # e.g. `rm -rf models/digits/3`: a plain shell command
            done = subprocess.run(command.line, shell=True, cwd=cwd, capture_output=True, text=True)
        else:
            done = _run(command, cwd)
        shown = (done.stdout + done.stderr).splitlines()
        assert [stamp.sub("<time>", line) for line in shown] == [
            stamp.sub("<time>", line) for line in expected
        ], command.line


def _sessions() -> list[list[tuple[Command, list[str]]]]:
    found = [
        transcript(b) for b in blocks(REPO / "docs/registry.md") if "$ digits models" in b.text
    ]
    assert len(found) == 2, "registry.md: the models session and the dangling-alias session"
    return found


def test_registry_session_prints_what_the_docs_show(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    for version, (accuracy, parent) in enumerate([(0.90, None), (0.91, 1), (0.92, 2)], 1):
        manifest = {"loss": "cross_entropy", "metrics": {"accuracy": accuracy}}
        if parent:
            manifest["parent_version"] = parent
        registry.publish("digits", toy_params(version), manifest)
    registry.set_alias("digits", "production", 2)
    session, _dangling = _sessions()
    assert len(session) >= 5
    _check_session(session, tmp_path)
    for words in (("models", "list"), ("models", "promote", "3"), ("models", "rollback")):
        done = _run(find_command("README.md", "digits", *words), tmp_path)
        assert done.returncode == 0, done.stderr
    assert registry.resolve("digits", "production") == 2  # promoted to 3, rolled back


def test_dangling_alias_session_prints_what_the_docs_show(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    for version, accuracy in enumerate([0.97, 0.98, 0.99], 1):
        manifest = {"loss": "cross_entropy", "metrics": {"accuracy": accuracy}}
        registry.publish("digits", toy_params(version), manifest)
        registry.set_alias("digits", "production", version)
    _session, dangling = _sessions()
    _check_session(dangling, tmp_path)


def _pictures(directory: Path) -> None:
    """The files the documented predict lines name: pictures of a '1' and a small IDX archive."""
    ink = np.zeros((28, 28), np.uint8)
    ink[6:22, 13:15] = 255  # white on black, MNIST's way
    Image.fromarray(255 - ink).save(directory / "seven.png")  # dark on paper: --invert
    for name in ("three.jpg", "scan.jpg", "photo.jpg", "canvas.png"):
        Image.fromarray(255 - ink).resize((140, 140)).save(directory / name)
    Image.fromarray(ink).save(directory / "a.png")
    archive = gzip.compress(encode_idx(np.stack([ink, ink, ink])))
    (directory / "t10k-images-idx3-ubyte.gz").write_bytes(archive)


def _wait_serving(check: Callable[[], subprocess.CompletedProcess[str]], server: Any) -> Any:
    deadline = time.monotonic() + 60
    while True:
        done = check()
        if done.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
            return done
        time.sleep(0.5)


def _start(command: Command, cwd: Path, ports: dict[str, str], **env: str) -> Any:
    argv, full_env = _as_run(command, ports)
    full_env.update(env)
    log = (cwd / f"server-{len(list(cwd.glob('server-*')))}.log").open("w")
    return subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)


def _stop(server: Any) -> int:
    server.send_signal(signal.SIGTERM)
    return int(server.wait(timeout=60))


def test_serve_healthcheck_and_predict_as_documented(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    for seed in range(4):
        publish(registry, seed)  # versions 1-4, production: 4
    _pictures(tmp_path)
    ports = {"50051": _free_port(), "9100": _free_port()}
    health = find_command("docs/service.md", "healthcheck", "--target", "127.0.0.1:50051")
    server = _start(find_command("README.md", "digits", "serve"), tmp_path, ports)
    try:
        done = _wait_serving(lambda: _run(health, tmp_path, ports), server)
        assert done.returncode == 0 and "SERVING" in done.stdout, done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['9100']}/metrics", timeout=10) as r:
            assert r.status == 200 and b"digits_" in r.read()
        readme = _run(find_command("README.md", "digits", "predict"), tmp_path, ports)
        assert readme.returncode == 0 and "seven.png" in readme.stdout, readme.stderr
        shown = _run(find_command("README.md", "digits", "predict", "--target", "127.0.0.1:50051",
                                  "--show-input"), tmp_path, ports)  # fmt: skip
        assert shown.returncode == 0 and (tmp_path / "seen.png").is_file(), shown.stderr
        target = ("--target", "127.0.0.1:50051")
        table = _run(
            find_command("docs/benchmarks.md", "digits", "predict", *target), tmp_path, ports
        )
        assert table.returncode == 0 and "three.jpg" in table.stdout, table.stderr
        as_json = _run(
            find_command("docs/benchmarks.md", "digits", "predict", *target, "--json"),
            tmp_path,
            ports,
        )
        assert json.loads(as_json.stdout)["predictions"][0]["version"] == 4
        pinned = _run(
            find_command("docs/benchmarks.md", "digits", "predict", *target, "--top-k"),
            tmp_path,
            ports,
        )
        assert pinned.returncode == 0 and "a.png" in pinned.stdout, pinned.stderr
        idx = _run(
            find_command(
                "docs/benchmarks.md", "digits", "predict", *target, "t10k-images-idx3-ubyte.gz"
            ),
            tmp_path,
            ports,
        )
        assert idx.returncode == 0 and idx.stdout.count("t10k-images-idx3-ubyte.gz[") == 3
    finally:
        code = _stop(server)
    assert code == 0  # docs/service.md: SIGTERM drains and exits 0
    from_env = find_command("docs/service.md", "service")
    server = _start(from_env, tmp_path, ports, DIGITS_METRICS_PORT="-1")
    try:
        done = _wait_serving(lambda: _run(health, tmp_path, ports), server)
        assert done.returncode == 0 and "SERVING" in done.stdout, done.stderr
    finally:
        assert _stop(server) == 0


@pytest.mark.skipif(not os.environ.get("MNIST_DIR"), reason="MNIST_DIR (real MNIST files) not set")
@pytest.mark.usefixtures("prefect_harness")
def test_quick_run_recipe_publishes(tmp_path: Path) -> None:
    """docs/pipeline.md's quick run, MNIST from a file:// mirror, the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    mirror = Path(os.environ["MNIST_DIR"]).resolve().as_uri() + "/"
    command = find_command("docs/pipeline.md", "digits", "train", "--epochs", "1")
    done = _run(
        command,
        tmp_path,
        DIGITS_MNIST_MIRRORS=mirror,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_HOME=str(tmp_path / "prefect"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "published" in done.stdout.lower(), done.stdout
    assert Registry(tmp_path / "models").resolve("digits", "production") == 1

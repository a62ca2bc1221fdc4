"""Every Python block of README.md and docs/*.md runs, as a reader would run it.

Each page's blocks run in order in one namespace, in a fresh interpreter whose cwd is an empty
temporary directory (tests/helpers/doc_runner.py), against a real `digits serve` on a free
loopback port (V2 and HTTP on) that the documented `127.0.0.1:50051` and `127.0.0.1:8080` are
pointed at. Conventions a page
may use (`<!-- not run: why -->`, `<!-- setup: ... -->`, `<!-- new process: why -->`) are in
tests/helpers/doc_blocks.py; `docs.*` in setup blocks is tests/helpers/doc_setup.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import Registry
from tests.helpers.doc_blocks import REPO, documents, python_blocks, python_segments
from tests.helpers.doc_runner import SKIP_EXIT
from tests.helpers.servers import Running, free_port, start
from tests.helpers.toy_models import publish

pytestmark = pytest.mark.integration

SEGMENTS = [(page, i) for page in documents() for i in range(len(python_segments(page)))]


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A real server on 127.0.0.1:<free> over four toy versions (production: 4), V2 on."""
    registry = Registry(tmp_path_factory.mktemp("docs-registry"))
    for seed in range(4):
        publish(registry, seed)
    running = start(registry, enable_v2=True, http_port=free_port())
    yield running
    running.close()


def _needs_prefect(page: Path) -> bool:
    return any("mnist_mirror" in (b.setup or "") for b in python_blocks(page))


def test_every_skipped_block_says_why() -> None:
    skipped = [b for page in documents() for b in python_blocks(page) if b.skip_reason is not None]
    assert all(len(b.skip_reason or "") >= 10 for b in skipped), [b.where for b in skipped]
    where = ", ".join(b.where for b in skipped)
    assert len(skipped) <= 3, f"use <!-- not run --> sparingly: {where}"


@pytest.mark.parametrize(
    ("page", "index"), SEGMENTS, ids=[f"{p.relative_to(REPO)}#{i}" for p, i in SEGMENTS]
)
def test_python_blocks_run(
    page: Path, index: int, tmp_path: Path, docs_server: Running, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DIGITS_"))}
    env.update(PYTHONPATH=str(REPO), DOCS_TARGET=docs_server.target)
    env["DOCS_HTTP_TARGET"] = docs_server.http_url.removeprefix("http://")
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    if _needs_prefect(page) and os.environ.get("MNIST_DIR"):
        request.getfixturevalue("prefect_harness")
        from prefect.settings import PREFECT_API_URL

        env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    command = [sys.executable, "-m", "tests.helpers.doc_runner", str(page), str(index)]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    if done.returncode == SKIP_EXIT:
        pytest.skip(done.stdout.strip())
    assert done.returncode == 0, done.stderr[-3000:]

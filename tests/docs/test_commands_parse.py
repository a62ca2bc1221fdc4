"""Every documented `digits`, `python -m service...` and `make` command line parses as written.

A renamed flag, a dropped sub-command, a Makefile variable or target that no longer exists,
or an environment variable no setting reads breaks this test, not a user following the docs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re

import pytest

from cli.main import build_parser
from pipeline.mirrors import MIRRORS_ENV
from registry.registry import REGISTRY_ENV_VAR
from service.healthcheck import build_parser as healthcheck_parser
from service.settings import ServiceSettings
from tests.helpers.doc_blocks import (
    REPO,
    Command,
    all_commands,
    blocks,
    documented_commands,
    documents,
    shell_commands,
)

COMMANDS = documented_commands()
_MAKEFILE = (REPO / "Makefile").read_text()
MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", _MAKEFILE, re.MULTILINE))
MAKE_VARIABLES = set(re.findall(r"^(?:export\s+)?([A-Z_]+)\s*\??=", _MAKEFILE, re.MULTILINE))
DIGITS_ENV = {f"DIGITS_{name.upper()}" for name in ServiceSettings.model_fields}
DIGITS_ENV |= {MIRRORS_ENV, REGISTRY_ENV_VAR}


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """parse_args, turning argparse's exit into a test failure that quotes its message."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):  # --help exits 0
            pytest.fail(f"argparse refused it: {stderr.getvalue().strip()}")


def test_the_docs_document_commands_of_every_kind() -> None:
    kinds = {kind for _, kind, _ in COMMANDS}
    assert kinds == {"digits", "service", "healthcheck", "make"}, kinds
    assert len(COMMANDS) >= 25  # the collector still finds the docs' command lines


@pytest.mark.parametrize(
    ("command", "kind", "args"),
    COMMANDS,
    ids=[f"{c.block.where}:{' '.join(c.argv)[:60]}" for c, _, _ in COMMANDS],
)
def test_documented_command_parses(command: Command, kind: str, args: list[str]) -> None:
    unknown_env = {n for n in command.env if n.startswith("DIGITS_")} - DIGITS_ENV
    assert not unknown_env, f"no setting reads {sorted(unknown_env)}"
    if kind == "digits":
        _parse(build_parser(), args)
    elif kind == "healthcheck":
        _parse(healthcheck_parser(), args)
    elif kind == "service":
        assert args == [], "python -m service takes no arguments (DIGITS_* variables only)"
    else:
        variables = {a.partition("=")[0] for a in args if "=" in a}
        targets = [a for a in args if "=" not in a and not a.startswith("-")]
        assert set(targets) <= MAKE_TARGETS, f"no make target {set(targets) - MAKE_TARGETS}"
        assert variables <= MAKE_VARIABLES, f"the Makefile reads no {variables - MAKE_VARIABLES}"


def _compose_images() -> set[str]:
    return set(re.findall(r"^\s+image:\s*(\S+)", (REPO / "compose.yaml").read_text(), re.M))


def test_documented_image_tags_are_the_ones_compose_runs() -> None:
    """One name per image: `docker build -t X` in the docs builds what compose.yaml runs."""
    images = _compose_images()
    assert images, "compose.yaml names no image"
    tags = []
    for command in all_commands():
        if command.argv[:2] in (["docker", "build"], ["buildah", "bud"]):
            words = command.argv
            tags += [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-t", "--tag")]
    assert tags, "the docs build no image any more?"
    assert set(tags) <= images, f"{sorted(set(tags) - images)} is not in compose.yaml"


def test_no_block_cds_into_a_directory_and_then_names_it_again() -> None:
    """`cd deploy/k8s` then `kubectl apply -k deploy/k8s` fails as written (a subshell keeps
    the directory: `(cd deploy/k8s && ...)`)."""
    for block in [b for page in documents() for b in blocks(page)]:
        current: str | None = None
        for command in shell_commands(block):
            if command.argv[0] == "cd" and len(command.argv) == 2:
                current = command.argv[1].rstrip("/")
            elif current is not None:
                bad = [a for a in command.argv[1:] if a.rstrip("/") == current]
                assert not bad, f"{block.where}: `cd {current}` then {command.line!r}"


def test_pages_with_bare_commands_say_where_they_come_from() -> None:
    """`digits`, `prefect` and `python -m service` are `command not found` in a fresh shell."""
    bare = {"digits", "prefect"}
    pages = {c.block.path for c in all_commands() if c.argv[0] in bare}
    pages |= {c.block.path for c, kind, _ in COMMANDS if kind in ("service", "healthcheck")}
    silent = [p.name for p in sorted(pages) if "source .venv/bin/activate" not in p.read_text()]
    assert not silent, f"say how to get the commands on PATH in {silent}"

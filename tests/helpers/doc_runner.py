"""Run one page's Python blocks in this (fresh) interpreter: `python -m tests.helpers.doc_runner
PAGE SEGMENT` from the temporary directory the blocks should see as their cwd.

Blocks of the segment run in order in one namespace, each compiled under its `page:line` so a
traceback points at the doc. `127.0.0.1:50051` (and the HTTP `127.0.0.1:8080`) in a block or a
setup becomes $DOCS_TARGET ($DOCS_HTTP_TARGET) when set: the loopback server the test started on
free ports. Exit 77 with a reason on stdout = skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.helpers import doc_setup
from tests.helpers.doc_blocks import python_segments

SKIP_EXIT = 77


def run_segment(page: Path, index: int) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__", "docs": doc_setup}
    for block in python_segments(page)[index]:
        if block.skip_reason is not None:
            continue
        if block.setup:
            setup = doc_setup.with_target(block.setup)
            exec(compile(setup, f"{block.where} (setup)", "exec"), namespace)
        code = doc_setup.with_target(block.text)
        exec(compile(code, block.where, "exec"), namespace)


def main(argv: list[str]) -> int:
    try:
        run_segment(Path(argv[0]), int(argv[1]))
    except doc_setup.Skip as skip:
        print(skip)
        return SKIP_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""docs/registry.md lists every manifest key `digits train` writes (pipeline.steps.build_manifest).

The page once listed keys the training run never wrote (`parent_version`, `hyperparameters`,
`datasets`, `git_revision`); this keeps the list and the code together in both directions for
the keys the code returns from its dict literal.
"""

from __future__ import annotations

import ast
import re

from tests.helpers.doc_blocks import REPO

NEVER_WRITTEN = ("parent_version", "hyperparameters", "datasets", "git_revision")


def _written_keys() -> set[str]:
    tree = ast.parse((REPO / "pipeline" / "steps.py").read_text())
    (function,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                   and n.name == "build_manifest"]  # fmt: skip
    (returned,) = [n.value for n in ast.walk(function) if isinstance(n, ast.Return)]
    assert isinstance(returned, ast.Dict), "build_manifest returns a dict literal"
    return {k.value for k in returned.keys if isinstance(k, ast.Constant)}


def _documented_paragraph() -> str:
    text = (REPO / "docs" / "registry.md").read_text()
    start = text.index("What `digits train` records")
    return text[start : text.index("\n\n", start)]


def test_registry_doc_lists_what_training_writes() -> None:
    written = _written_keys()
    assert {"metrics", "training", "dataset"} <= written
    documented = set(re.findall(r"`([a-z0-9_]+)`", _documented_paragraph()))
    assert written <= documented, f"undocumented manifest keys: {sorted(written - documented)}"
    for key in NEVER_WRITTEN:
        if key not in written:
            assert f"`{key}`" not in _documented_paragraph().split("It records no")[0], key

"""The layers import one way: core <- registry <- pipeline / service; cli on top.

Checked on the source (every import statement, including those inside functions), so a lazy
import cannot slip a dependency in either. The model server must not import Prefect (its image
has no pipeline package) and core stays pure NumPy (no file formats, no network, no frameworks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "registry", "pipeline", "service", "cli")
# What each product package may import from the others.
ALLOWED = {
    "core": set(),
    "registry": {"core"},
    "pipeline": {"core", "registry"},
    "service": {"core", "registry"},
    "cli": {"core", "registry", "pipeline", "service", "cli"},
}
# Third-party modules a layer must never import.
FORBIDDEN = {
    "core": {"prefect", "grpc", "safetensors", "boto3", "botocore", "PIL", "pydantic"},
    "registry": {"prefect", "grpc"},
    "service": {"prefect", "dask", "distributed", "prefect_dask"},
}


def _imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return [p for p in (REPO / package).rglob("*.py") if "generated" not in p.parts]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layers(package: str) -> None:
    wrong = []
    for path in _sources(package):
        imported = _imports(path)
        for other in (imported & set(PACKAGES)) - ALLOWED[package] - {package}:
            wrong.append(f"{path.relative_to(REPO)} imports {other}")
        for banned in imported & FORBIDDEN.get(package, set()):
            wrong.append(f"{path.relative_to(REPO)} imports {banned}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from pipeline.flows import train_flow\n    import prefect\n")
    assert _imports(source) == {"pipeline", "prefect"}

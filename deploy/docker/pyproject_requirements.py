"""Print the requirement lines of pyproject.toml (base dependencies plus chosen extras)."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Return the base dependencies followed by those of each named extra, in file order.

    The image build installs these before copying the source, so the dependency layer is cached
    until pyproject.toml itself changes; the project is then installed with ``--no-deps``.
    """
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise ValueError(f"unknown extra {extra!r} in {pyproject} (known: {known})")
        lines.extend(optional[extra])
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path, help="path to pyproject.toml")
    parser.add_argument("--extra", action="append", default=[], help="also list this extra")
    args = parser.parse_args(argv)
    try:
        print("\n".join(requirements(args.pyproject, args.extra)))
    except (OSError, KeyError, ValueError) as error:
        print(f"pyproject_requirements: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

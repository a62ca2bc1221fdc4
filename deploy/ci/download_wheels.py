"""Download wheels for another Python version, with environment markers evaluated for that version.

`pip download --python-version X` selects wheel tags and Requires-Python for X, but evaluates
environment markers (``; python_full_version < "3.11.3"``) for the interpreter running pip. The
CI base image has Debian's Python 3.11.2 while the host may have 3.11.7, and e.g. redis (a Prefect
dependency) needs async-timeout only below 3.11.3: without this, the offline build lacks it and
pip inside the build backtracks for minutes before failing. So pip runs here with ``platform``
reporting the target version, which pip's vendored ``packaging`` reads for the markers.

Usage: download_wheels.py 3.11.2 DEST -r requirements.txt [more pip download arguments]
"""

from __future__ import annotations

import platform
import sys


def pin_marker_version(version: str) -> None:
    """Make marker evaluation see `version` (python_version and python_full_version)."""
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"expected a full version like 3.11.2, got {version!r}")
    major, minor, micro = parts
    platform.python_version = lambda: version  # type: ignore[assignment]
    platform.python_version_tuple = lambda: (major, minor, micro)  # type: ignore[assignment]
    # Recent pip caches the marker environment per process: drop it so it is rebuilt from the above.
    from pip._vendor.packaging import markers

    cached = getattr(markers, "_cached_default_environment", None)
    if cached is not None:
        cached.cache_clear()


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    version, destination, *pip_args = argv
    try:
        pin_marker_version(version)
    except ValueError as error:
        print(f"download_wheels: {error}", file=sys.stderr)
        return 2
    from pip._internal.cli.main import main as pip_main

    short_version = ".".join(version.split(".")[:2])
    return pip_main(
        [
            "download",
            "--only-binary=:all:",
            "--python-version",
            short_version,
            "--implementation",
            "cp",
            "--dest",
            destination,
            *pip_args,
        ]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

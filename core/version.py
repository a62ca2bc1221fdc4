"""The installed digits package's version: recorded in manifests, reported by servers."""

from __future__ import annotations

from importlib import metadata

__all__ = ["package_version"]


def package_version() -> str:
    """The installed version of the `digits` distribution, or "0+unknown" (a PEP 440 local
    version) when running from a source tree that was never installed."""
    try:
        return metadata.version("digits")
    except metadata.PackageNotFoundError:
        return "0+unknown"

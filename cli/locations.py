"""A directory or an object-storage URL on the command line (--registry, log destinations)."""

from __future__ import annotations

from pathlib import Path


def registry_location(text: str) -> str | Path:
    """argparse type of a location: ``s3://...`` stays text, else a Path (registry.storage)."""
    from registry.storage import as_location

    location: str | Path = as_location(text)
    return location

"""The --registry value: an object-storage URL kept as text, anything else a directory path."""

from __future__ import annotations

from pathlib import Path

S3_SCHEME = "s3://"  # registry.storage.S3_SCHEME (not imported: cli modules start fast)


def registry_location(text: str) -> str | Path:
    """argparse type of ``--registry``: ``s3://bucket/prefix`` as is, else a Path."""
    return text if text.startswith(S3_SCHEME) else Path(text)

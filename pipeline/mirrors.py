"""Mirror list: where the MNIST files are fetched from, in order of preference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["DEFAULT_MIRRORS", "MIRRORS_ENV", "resolve_mirrors"]

# The torchvision and TensorFlow mirrors; both serve byte-identical copies of the canonical files.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

MIRRORS_ENV = "DIGITS_MNIST_MIRRORS"
_SCHEMES = ("http://", "https://", "file://")


def resolve_mirrors(explicit: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """Explicit mirrors win, then the comma-separated env variable, then the defaults.

    Raises ValueError naming a mirror that is not an http(s):// or file:// URL.
    """
    if explicit:
        mirrors = tuple(explicit)
    elif environ.get(MIRRORS_ENV, "").strip():
        mirrors = tuple(m.strip() for m in environ[MIRRORS_ENV].split(",") if m.strip())
    else:
        mirrors = DEFAULT_MIRRORS
    for mirror in mirrors:
        if not mirror.startswith(_SCHEMES):
            raise ValueError(f"mirror must be an http://, https:// or file:// URL, got {mirror!r}")
    return mirrors

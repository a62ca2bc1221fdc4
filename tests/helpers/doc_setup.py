"""What hidden `<!-- setup: ... -->` blocks of the docs call (as `docs.<name>`), in the child.

The harness (tests/docs) starts the servers and passes their addresses in the environment:
DOCS_TARGET and DOCS_HTTP_TARGET (a server on a toy registry, V2 and the HTTP edge on),
PREFECT_API_URL (the session's Prefect test server), MNIST_DIR (the real files, optional).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DOCUMENTED_TARGET = "127.0.0.1:50051"
DOCUMENTED_HTTP = ("127.0.0.1:8080", "localhost:8080")


class Skip(Exception):
    """The page cannot run on this machine; the message says why."""


def with_target(code: str) -> str:
    """The block with the documented addresses (gRPC, HTTP) replaced by the test server's."""
    target, http = os.environ.get("DOCS_TARGET"), os.environ.get("DOCS_HTTP_TARGET")
    if target:
        code = code.replace(DOCUMENTED_TARGET, target)
    for documented in DOCUMENTED_HTTP if http else ():
        code = code.replace(documented, http)
    return code


def publish_toy_models(root: str = "models", count: int = 3) -> None:
    """`count` toy versions of `digits` in `root`, production on the last one."""
    from registry import Registry
    from tests.helpers.toy_models import publish

    registry = Registry(Path(root))
    for seed in range(count):
        publish(registry, seed)


def mnist_mirror() -> None:
    """Point downloads at MNIST_DIR (as a file:// mirror) and the cache at ./cache, or skip."""
    directory = os.environ.get("MNIST_DIR")
    if not directory:
        raise Skip("MNIST_DIR (the real MNIST files) is not set")
    if not os.environ.get("PREFECT_API_URL"):
        raise Skip("no Prefect server given (PREFECT_API_URL)")
    os.environ["DIGITS_MNIST_MIRRORS"] = Path(directory).resolve().as_uri() + "/"
    os.environ["XDG_CACHE_HOME"] = str(Path("cache").resolve())


def digit_images(n: int) -> np.ndarray:
    """n uint8 images (n, 28, 28) with a bright stroke, as a scanner would give."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 13:15] = 255
    return images
